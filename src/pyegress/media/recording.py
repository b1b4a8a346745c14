"""What every egress recording shares, whatever happens to its media on the way: its life.

A :class:`Recording` opens its source, goes ACTIVE once it has outputs, records
until it is stopped, its source ends or leaves, or its time limit, then closes
the outputs, completes the uploads and reports how it ended (docs/egress-states.md).
Two kinds fill in the middle: :class:`~.pipeline.Pipeline` decodes, composes and
encodes once (source → sync → compose → encode → outputs); :class:`~.passthrough.PassthroughPipeline`
writes a track's samples unchanged (source → sync → outputs).
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..contract.events import (END_API, END_FAILURE, END_LIMIT_REACHED, END_SOURCE_CLOSED, END_STREAMS_STOPPED,
                               MSG_ROOM_CONNECTION_FAILED, MSG_STOPPED_BEFORE_STARTED, HandlerEvent)
from ..contract.job import JobSpec
from .outputs.file import FileOutput
from .outputs.images import ImagesOutput
from .outputs.segments import SegmentsOutput
from .outputs.stream import StreamOutput
from .outputs.uploads import OutputUploads
from .outputs.websocket import WebsocketOutput
from .source import CODE_ROOM_CONNECTION, Source, SourceError

log = logging.getLogger(__name__)
#: How often the outputs' size is held against ``max_size_bytes`` (livekit/egress controller.go: every 15 s).
SIZE_CHECK_S = 1.0
#: EgressInfo.error_code when an output's destination failed the egress (LiveKit: psrpc Unavailable, HTTP 503).
CODE_OUTPUT_UNAVAILABLE = 503


class Recording:
    """One egress's recording. ``emit`` receives :class:`HandlerEvent` s; :meth:`stop` (any time) ends it.

    A subclass sets :attr:`source` and implements :meth:`_open_outputs`, :meth:`_record`,
    :meth:`_close_outputs`, :meth:`_elapsed_ns` and :meth:`_wall_ns`; it may override :meth:`_await_media`,
    :meth:`pause`, :meth:`resume`, :meth:`set_layout`, :meth:`update_streams` and :meth:`preview`.
    """

    source: Source

    def __init__(self, spec: JobSpec, emit) -> None:
        self.spec = spec
        self.emit = emit
        self._stop = asyncio.Event()
        self._stop_reason = END_API
        self.files: list[FileOutput] = []
        self.segments: list[SegmentsOutput] = []
        self.images: list[ImagesOutput] = []
        self.streams: list[StreamOutput] = []  # every URL ever added, removed ones included (for results)
        self.websockets: list[WebsocketOutput] = []
        self.uploads: OutputUploads | None = None
        self.wall_start_ns = 0  # Unix ns where the outputs' timeline begins (set by _open_outputs)

    # ---- control ----------------------------------------------------------
    def stop(self, reason: str = END_API) -> None:
        """End the recording; ``reason`` is one of LiveKit's end reasons (``contract.events.END_*``)."""
        if not self._stop.is_set():
            self._stop_reason = reason
            self._stop.set()

    def pause(self) -> None:
        """Record nothing until :meth:`resume`; the outputs stay open and continue without a gap."""

    def resume(self) -> None: ...

    def set_layout(self, name: str) -> None:
        """Switch the composite layout (raises ValueError for an unknown name); no-op without one."""

    def update_streams(self, add: list[str], remove: list[str]) -> None:
        """Start streaming to ``add`` and stop streaming to ``remove`` (UpdateStream); no-op without streams."""

    def preview(self) -> None:
        """Someone watches the live preview: write it for a while (no-op without a composed picture)."""

    # ---- what a kind of recording fills in ----------------------------------
    async def _await_media(self) -> None:
        """Wait, once connected, until there is media to open the outputs with, or until stopped
        (then the egress is aborted); by default there is no need to wait.

        Raises:
            SourceError: what was to be recorded went away first (the egress fails with it).
        """

    def _open_outputs(self) -> None:
        """Open every output and set :attr:`wall_start_ns`.

        Raises:
            Exception: bad settings or an unwritable path (the egress fails with it).
        """
        raise NotImplementedError

    async def _record(self) -> int:
        """Record until :meth:`_ended` says so; returns the end of the timeline in ns."""
        raise NotImplementedError

    def _close_outputs(self) -> None:
        """Finish every output (runs in a thread).

        Raises:
            Exception: an output could not be finished (the egress fails with it).
        """
        raise NotImplementedError

    def _elapsed_ns(self) -> int:
        """Recorded time so far (ns)."""
        raise NotImplementedError

    def _wall_ns(self, elapsed_ns: int) -> int:
        """Unix ns of a point ``elapsed_ns`` into the recorded timeline."""
        raise NotImplementedError

    # ---- results ----------------------------------------------------------
    def _event(self, event: str, duration_ns: int, ended_at: int = 0, **kw) -> HandlerEvent:
        return HandlerEvent(event=event, ended_at=ended_at,
                            files=[f.result(duration_ns, ended_at) for f in self.files],
                            segments=[s.result(ended_at) for s in self.segments],
                            images=[i.result(ended_at) for i in self.images],
                            streams=[s.result() for s in self.streams],
                            uploads=self.uploads.stats.totals() if self.uploads is not None else [], **kw)

    def _progress(self, now_ns: int) -> None:
        self.emit(self._event("progress", now_ns, tracks=self.source.health.report()))

    # ---- main loop --------------------------------------------------------
    async def run(self) -> None:
        """Open the source, open the outputs, record until stopped, finish; emits events throughout.

        Never raises for media or connection errors: they become a ``failed`` event.
        """
        try:
            await self.source.start(self._stop)
        except SourceError as e:
            self.emit(HandlerEvent(event="failed", error=str(e), error_code=e.code))
            return
        try:
            await self._await_media()
        except SourceError as e:
            await self.source.close()
            self.emit(HandlerEvent(event="failed", error=str(e), error_code=e.code))
            return
        if self._stop.is_set():  # stopped before anything was recorded: no outputs, no success (LiveKit: ABORTED)
            await self.source.close()
            self.emit(HandlerEvent(event="aborted", error=MSG_STOPPED_BEFORE_STARTED, reason=self._stop_reason))
            return
        try:
            self._open_outputs()
        except Exception as e:  # bad encoder settings or an unwritable path
            await self.source.close()
            self.emit(HandlerEvent(event="failed", error=f"cannot open output: {e}"))
            return
        self.emit(self._event("active", 0, started_at=self.wall_start_ns, room_id=self.source.room_sid))
        error = ""
        try:
            end_ns = await self._record()
            if self.source.failure:  # the source died while recording (Chromium or the receiver exited)
                raise RuntimeError(self.source.failure)
        except Exception as e:
            log.exception("recording failed")
            error, end_ns = f"pipeline failed: {e}", self._elapsed_ns()
        self.emit(HandlerEvent(event="ending"))
        await self.source.close()
        await self._finish(end_ns, error)

    def _ended(self):
        """The end test, called with the recorded time (ns): stopped, the source closed, what it records
        gone for ``empty_timeout_s``, ``max_duration_s`` or ``max_size_bytes`` reached, an output failure
        that fails the egress, or every stream removed (each stops with its reason)."""
        source, spec = self.source, self.spec
        seen = False
        empty_since: int | None = None
        next_size_check = 0.0

        def ended(now: int) -> bool:
            nonlocal seen, empty_since, next_size_check
            if self._stop.is_set():
                return True
            if source.closed.is_set():
                log.info("source closed: %s", source.closed_reason)
                self.stop(END_SOURCE_CLOSED)
                return True
            if self._output_error()[0]:
                self.stop(END_FAILURE)
                return True
            if self._streams_stopped():
                self.stop(END_STREAMS_STOPPED)
                return True
            # Ending by itself once what it records has gone, as LiveKit's egress does; real time,
            # since the media clock stands still while paused. While the room connection is being
            # re-established nobody is visible, and nobody has left.
            if source.reconnecting:
                empty_since = None
            elif source.present():
                seen, empty_since = True, None
            elif seen:
                empty_since = empty_since if empty_since is not None else time.monotonic_ns()
                if time.monotonic_ns() - empty_since >= spec.empty_timeout_s * 1e9:
                    log.info("%s left the room", source.presence)
                    self.stop(END_SOURCE_CLOSED)
                    return True
            if spec.max_duration_s and now >= spec.max_duration_s * 1e9:
                self.stop(END_LIMIT_REACHED)
                return True
            if spec.max_size_bytes and time.monotonic() >= next_size_check:  # asked every tick: stat less often
                next_size_check = time.monotonic() + SIZE_CHECK_S
                if (size := self._written_bytes()) >= spec.max_size_bytes:
                    log.info("outputs hold %d bytes, file_output_max_size is %d", size, spec.max_size_bytes)
                    self.stop(END_LIMIT_REACHED)
                    return True
            return False
        return ended

    def _written_bytes(self) -> int:
        """What the outputs hold so far: LiveKit's ``file_output_max_size`` counts its egress's whole
        local directory (livekit/egress ``pkg/pipeline/controller.go``, ``monitorOutputDirSize``)."""
        return (sum(f.result(0).size for f in self.files) + sum(s.result().size for s in self.segments)
                + sum(i.size for i in self.images))

    def _last_stream(self) -> StreamOutput | None:
        """The stream that ended last when every output is a stream and none is running, else None.

        LiveKit's egress ends as soon as no output remains, FAILED if the last one failed and COMPLETE
        ("All streams stopped") if UpdateStream removed it (livekit/egress ``pkg/pipeline/controller.go``,
        ``streamFailed`` and ``streamFinished``)."""
        if self.files or self.segments or self.images or self.websockets or not self.streams:
            return None
        if any(s.status == "ACTIVE" for s in self.streams):
            return None
        return max(self.streams, key=lambda s: s.ended_at)

    def _streams_stopped(self) -> bool:
        last = self._last_stream()
        return last is not None and last.status == "FINISHED"

    def _output_error(self) -> tuple[str, int]:
        """An output's own failure that fails the egress, with its error_code: a websocket listener that
        went away (livekit/egress ``pkg/pipeline/sink/websocket.go``) or the last remaining stream failing;
        ``("", 0)`` when there is none."""
        if error := next((w.error for w in self.websockets if w.error), ""):
            return error, CODE_OUTPUT_UNAVAILABLE
        last = self._last_stream()
        if last is not None and last.status == "FAILED":
            return last.error, CODE_OUTPUT_UNAVAILABLE
        return "", 0

    async def _finish(self, end_ns: int, error: str) -> None:
        """Close the outputs, complete the uploads and emit the final event."""
        try:
            await asyncio.to_thread(self._close_outputs)
        except Exception as e:
            error = error or f"encoding failed: {e}"
        error_code = 0
        if not error:
            error, error_code = self._output_error()
        if not error and self.source.connection_failed:
            error, error_code = MSG_ROOM_CONNECTION_FAILED, CODE_ROOM_CONNECTION
        ended = self._wall_ns(end_ns)
        reconnects = list(self.source.reconnects)
        if error:
            event = self._event("failed", end_ns, ended, error=error, error_code=error_code, reconnects=reconnects)
        else:
            event = self._event("complete", end_ns, ended, reason=self._stop_reason, reconnects=reconnects,
                                limit_reached=self._stop_reason == END_LIMIT_REACHED)
        if self.uploads is not None:
            await asyncio.to_thread(self.uploads.finish, self.files, self.segments, event)
        self.emit(event)
