"""The room composite pipeline: room → sync → compose/mix → encode → files.

Timing model: one :class:`MediaClock` starts when the egress goes ACTIVE. A
tick loop samples the compositor at exactly ``framerate`` (the latest frame of
each track is shown; a late source repeats, a fast one drops) and pulls the
mixer in 20 ms blocks. Output PTS are tick numbers (video) and sample counts
(audio), so both streams share one timeline and the file lasts exactly from
ACTIVE to stop, whatever the sources do.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import av
from livekit import rtc

from ..worker.protocol import FileResult, JobSpec, WorkerEvent
from .clock import MediaClock
from .compose.audio import AudioMixer
from .compose.layout import Layout
from .compose.video import VideoCompositor
from .encode import MediaEncoder
from .encoder import EncoderThread
from .outputs.file import FileOutput
from .source import RoomSource, TrackRef

log = logging.getLogger(__name__)

AUDIO_BLOCK_MS = 20
AUDIO_CHANNELS = 2


class RoomCompositePipeline:
    """Records one room composite as described by ``spec``.

    ``emit`` receives :class:`WorkerEvent` s; call :meth:`stop` (any time) to end
    the recording, :meth:`set_layout` to switch layout.
    """

    def __init__(self, spec: JobSpec, emit) -> None:
        self.spec = spec
        self.emit = emit
        enc = spec.encoding
        self.clock = MediaClock()
        self.compositor = VideoCompositor(enc.width, enc.height, Layout.parse(spec.layout)) if spec.video else None
        self.mixer = AudioMixer(enc.audio_frequency, AUDIO_CHANNELS) if spec.audio else None
        self._stop = asyncio.Event()
        self._stop_reason = "stopped"
        self._speaker_tracks: dict[str, str] = {}  # participant identity -> camera track SID
        self.source = RoomSource(
            spec.ws_url, spec.token, want=self._want, sample_rate=enc.audio_frequency, channels=AUDIO_CHANNELS,
            on_track=self._on_track, on_track_ended=self._on_track_ended,
            on_video=self._on_video, on_audio=self._on_audio, on_speakers=self._on_speakers)

    # ---- source callbacks -------------------------------------------------
    def _want(self, pub: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant) -> bool:
        if pub.kind == rtc.TrackKind.KIND_VIDEO:
            return self.compositor is not None
        return self.mixer is not None

    def _on_track(self, ref: TrackRef) -> None:
        log.info("track %s (%s) of %s", ref.sid, ref.kind, ref.participant_identity)
        if ref.kind == "video":
            self.compositor.add_tile(ref.sid)
            self._speaker_tracks.setdefault(ref.participant_identity, ref.sid)
        else:
            self.mixer.add_track(ref.sid)

    def _on_track_ended(self, ref: TrackRef) -> None:
        log.info("track %s ended", ref.sid)
        if ref.kind == "video":
            self.compositor.remove_tile(ref.sid)
            if self._speaker_tracks.get(ref.participant_identity) == ref.sid:
                del self._speaker_tracks[ref.participant_identity]
        else:
            self.mixer.remove_track(ref.sid)

    def _on_video(self, ref: TrackRef, frame: rtc.VideoFrame) -> None:
        self.compositor.update(ref.sid, frame.data, frame.width, frame.height)

    def _on_audio(self, ref: TrackRef, samples) -> None:
        self.mixer.push(ref.sid, samples)

    def _on_speakers(self, identities: list[str]) -> None:
        if self.compositor is not None and identities:
            self.compositor.set_active_speaker(self._speaker_tracks.get(identities[0]))

    # ---- control ----------------------------------------------------------
    def stop(self, reason: str = "stopped") -> None:
        if not self._stop.is_set():
            self._stop_reason = reason
            self._stop.set()

    def set_layout(self, name: str) -> None:
        if self.compositor is not None:
            self.compositor.set_layout(Layout.parse(name))

    # ---- main loop --------------------------------------------------------
    async def run(self) -> None:
        """Connect, record until stopped, finish the files; emits events throughout.

        Never raises for media or connection errors: they become a ``failed`` event.
        """
        spec = self.spec
        try:
            await asyncio.wait_for(self.source.connect(), timeout=20)
        except Exception as e:  # connection errors of every kind end as a failed egress
            self.emit(WorkerEvent(event="failed", error=f"could not join room {spec.room_name!r}: {e}"))
            return
        try:
            encoder = MediaEncoder(spec.encoding, video=spec.video, audio=spec.audio, audio_channels=AUDIO_CHANNELS)
            files = [FileOutput(Path(t.path), encoder) for t in spec.files]
        except Exception as e:  # bad encoder settings or an unwritable path
            await self.source.close()
            self.emit(WorkerEvent(event="failed", error=f"cannot open output: {e}"))
            return
        thread = EncoderThread(encoder, [*files])
        self.clock.start()
        self.emit(WorkerEvent(event="active", started_at=self.clock.wall_start_ns, room_id=self.source.room_sid))
        error = ""
        try:
            end_ns = await self._tick_loop(thread)
        except Exception as e:
            log.exception("pipeline failed")
            error, end_ns = f"pipeline failed: {e}", self.clock.elapsed_ns()
        self.emit(WorkerEvent(event="ending"))
        await self.source.close()
        try:
            await asyncio.to_thread(thread.finish)
        except Exception as e:
            error = error or f"encoding failed: {e}"
        started, ended = self.clock.wall_start_ns, self.clock.wall_ns(end_ns)
        file_results = [FileResult(filename=t.filename, path=t.path, size=Path(t.path).stat().st_size,
                                   duration=end_ns, started_at=started, ended_at=ended)
                        for t in spec.files if Path(t.path).exists()]
        if error:
            self.emit(WorkerEvent(event="failed", error=error, files=file_results, ended_at=ended))
        else:
            self.emit(WorkerEvent(event="complete", files=file_results, ended_at=ended, reason=self._stop_reason))

    async def _tick_loop(self, thread: EncoderThread) -> int:
        """Emit video ticks and audio blocks against the clock until stopped; returns the end time in ns."""
        enc = self.spec.encoding
        frame_ns = 1_000_000_000 / enc.framerate
        block = enc.audio_frequency * AUDIO_BLOCK_MS // 1000
        video_pts = audio_pts = 0
        last_frame: av.VideoFrame | None = None
        seen_participants = False
        empty_since: int | None = None
        while True:
            now = self.clock.elapsed_ns()
            if self._stop.is_set():
                break
            if self.source.closed.is_set():
                self.stop("room closed")
                continue
            # Ending by itself once everyone has left, as LiveKit's room composite does.
            if self.source.publisher_count:
                seen_participants, empty_since = True, None
            elif seen_participants:
                empty_since = empty_since if empty_since is not None else now
                if now - empty_since >= self.spec.empty_timeout_s * 1e9:
                    self.stop("all participants left")
                    continue
            if thread.error is not None:
                raise thread.error
            if self.compositor is not None:
                while video_pts * frame_ns <= now:
                    canvas, changed = self.compositor.compose()
                    if changed or last_frame is None:
                        last_frame = av.VideoFrame.from_ndarray(canvas, format="yuv420p")
                    thread.submit_video(last_frame, video_pts)
                    video_pts += 1
            if self.mixer is not None:
                while audio_pts * 1e9 / enc.audio_frequency <= now:
                    thread.submit_audio(self.mixer.mix(block), audio_pts)
                    audio_pts += block
            next_video = video_pts * frame_ns if self.compositor is not None else float("inf")
            next_audio = audio_pts * 1e9 / enc.audio_frequency if self.mixer is not None else float("inf")
            delay = (min(next_video, next_audio) - self.clock.elapsed_ns()) / 1e9
            if thread.backlogged:
                delay = max(delay, 0.005)
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=max(delay, 0))
            except asyncio.TimeoutError:
                pass
        # The file covers [0, end): whole frames and blocks already emitted define the end.
        ends = []
        if self.compositor is not None:
            ends.append(int(video_pts * frame_ns))
        if self.mixer is not None:
            ends.append(int(audio_pts * 1e9 / enc.audio_frequency))
        return max(ends) if ends else self.clock.elapsed_ns()
