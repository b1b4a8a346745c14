"""The pipeline: room → sync → compose/mix → encode once → outputs.

Serves room composite, participant, track composite and track egress; they
differ only in which tracks they take (:meth:`CompositePipeline._want`).

Timing model: one :class:`MediaClock` starts when the egress goes ACTIVE. A
tick loop samples the compositor at exactly ``framerate`` (the latest frame of
each track is shown; a late source repeats, a fast one drops) and pulls the
mixer in 20 ms blocks. Output PTS are tick numbers (video) and sample counts
(audio), so both streams share one timeline and the outputs last exactly from
ACTIVE to stop, whatever the sources do. A pause stops that clock and the
source's reading until resumed, so the outputs continue without a gap in
their timeline and A/V stay aligned (the mixer keeps what it had buffered).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from livekit import rtc

from ..contract.events import (END_API, END_LIMIT_REACHED, END_SOURCE_CLOSED, MSG_ROOM_CONNECTION_FAILED, MSG_STOPPED_BEFORE_STARTED, HandlerEvent)
from ..contract.job import JobSpec
from .sync.clock import MediaClock
from .compose.audio import AudioMixer
from ..contract.layouts import Layout
from .compose.video import VideoCompositor
from .encode.encoder import MediaEncoder
from .encode.thread import EncoderThread
from .outputs.file import FileOutput
from .outputs.images import ImagesOutput
from .outputs.segments import SegmentsOutput
from .outputs.stream import StreamOutput
from .outputs.websocket import WebsocketOutput
from ..storage.base import ObjectStorage
from ..storage.uploads import StreamedUpload, UploadQueue
from .source import RoomSource, TrackRef

log = logging.getLogger(__name__)

#: Audio frame size (ms) read from the SDK, and the mixer's block, when low latency matters: with video
#: (the mixer's latency is the delay between picture and sound to make up for) or a websocket listener.
LIVE_AUDIO_FRAME_MS = 20
#: Otherwise (audio-only files, segments, streams) larger frames: 5x fewer events per track.
BULK_AUDIO_FRAME_MS = 100
AUDIO_CHANNELS = 2
#: EgressInfo.error_code of an egress that lost, or never got, its room connection (LiveKit: 503)
CODE_ROOM_CONNECTION = 503
CODE_INTERNAL = 500
_CHANNEL_GAINS = {"both": (1.0, 1.0), "left": (1.0, 0.0), "right": (0.0, 1.0)}
_AGENT = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
_CAMERA = (rtc.TrackSource.SOURCE_CAMERA, rtc.TrackSource.SOURCE_MICROPHONE)
_SCREEN = (rtc.TrackSource.SOURCE_SCREENSHARE, rtc.TrackSource.SOURCE_SCREENSHARE_AUDIO)


class CompositePipeline:
    """Records the tracks ``spec`` selects into its outputs.

    ``emit`` receives :class:`HandlerEvent` s; call :meth:`stop` (any time) to end
    the recording, :meth:`set_layout` to switch layout, :meth:`pause` and
    :meth:`resume` to leave out a stretch of the room.
    """

    #: EgressInfo.error_code when the source cannot be joined
    connect_error_code = CODE_ROOM_CONNECTION

    def __init__(self, spec: JobSpec, emit) -> None:
        self.spec = spec
        self.emit = emit
        enc = spec.encoding
        self.clock = MediaClock()
        self.compositor = VideoCompositor(enc.width, enc.height, Layout.parse(spec.layout)) if spec.video else None
        self.audio_frame_ms = LIVE_AUDIO_FRAME_MS if spec.video or spec.websocket_url else BULK_AUDIO_FRAME_MS
        self.mixer = AudioMixer.for_frames(enc.audio_frequency, AUDIO_CHANNELS, self.audio_frame_ms) \
            if spec.audio else None
        self._stop = asyncio.Event()
        self._stop_reason = END_API
        self._speaker_tracks: dict[str, str] = {}  # participant identity -> camera track SID
        self._tracks: set[str] = set()
        self._audio_tracks_seen = 0  # for audio_mixing dual_channel_alternate
        self.dropped_frames = 0  # video frames skipped because the encoder fell behind
        self.files: list[FileOutput] = []
        self.segments: list[SegmentsOutput] = []
        self.images: list[ImagesOutput] = []
        self.streams: list[StreamOutput] = []  # every URL ever added, removed ones included (for results)
        self.websockets: list[WebsocketOutput] = []
        self.uploads: UploadQueue | None = None
        self._streamed: dict[int, StreamedUpload] = {}  # index in files -> its upload while recording
        self._encoder: MediaEncoder | None = None
        self._thread: EncoderThread | None = None
        self.source = self._open_source()

    def _open_source(self):
        """Where the media comes from (a subclass may record something other than a room)."""
        enc = self.spec.encoding
        return RoomSource(
            self.spec.ws_url, self.spec.token, want=self._want, sample_rate=enc.audio_frequency,
            channels=AUDIO_CHANNELS, audio_frame_ms=self.audio_frame_ms, on_track=self._on_track,
            on_track_ended=self._on_track_ended,
            on_video=self._on_video, on_audio=self._on_audio, on_speakers=self._on_speakers,
            on_own_metadata=self._on_own_metadata)

    async def _connect(self) -> str:
        """Connect the source; returns why it failed, or "" once media can be recorded (or a stop came
        meanwhile: the caller then aborts)."""
        try:
            await asyncio.wait_for(self.source.connect(), timeout=20)
        except Exception as e:  # connection errors of every kind end as a failed egress
            return f"could not join room {self.spec.room_name!r}: {e}"
        return ""

    # ---- which tracks -----------------------------------------------------
    def _want(self, pub: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant) -> bool:
        is_video = pub.kind == rtc.TrackKind.KIND_VIDEO
        if (self.compositor if is_video else self.mixer) is None:
            return False
        spec = self.spec
        if spec.source == "participant":
            return participant.identity == spec.identity and pub.source in (_SCREEN if spec.screen_share else _CAMERA)
        if spec.source == "track_composite":
            return pub.sid == (spec.video_track_id if is_video else spec.audio_track_id)
        if spec.source == "track":
            return pub.sid == spec.track_id
        if spec.source == "media":
            if is_video:
                if spec.video_track_id:
                    return pub.sid == spec.video_track_id
                wanted = rtc.TrackSource.SOURCE_SCREENSHARE if spec.screen_share else rtc.TrackSource.SOURCE_CAMERA
                return participant.identity == spec.identity and pub.source == wanted
            return spec.capture_all_audio or self._route(pub.sid, participant) is not None
        return True

    def _route(self, sid: str, participant: rtc.RemoteParticipant | None):
        """The first audio route of a ``media`` egress that matches this track, or None."""
        identity = participant.identity if participant else None
        kind = participant.kind if participant else None
        for route in self.spec.audio_routes:
            if (route.track_id and route.track_id == sid) or (route.identity and route.identity == identity) \
                    or (route.kind is not None and route.kind == kind):
                return route
        return None

    def _present(self) -> bool:
        """Whether what this egress records is still in the room (it ends by itself otherwise)."""
        if self.spec.source == "room_composite":
            return self.source.publisher_count > 0
        return bool(self._tracks)

    # ---- source callbacks -------------------------------------------------
    def _on_track(self, ref: TrackRef) -> None:
        log.info("track %s (%s) of %s", ref.sid, ref.kind, ref.participant_identity)
        self._tracks.add(ref.sid)
        if ref.kind == "video":
            self.compositor.add_tile(ref.sid)
            self._speaker_tracks.setdefault(ref.participant_identity, ref.sid)
        else:
            self.mixer.add_track(ref.sid, self._audio_gains(ref))

    def _audio_gains(self, ref: TrackRef) -> tuple[float, float] | None:
        """Where an audio track is heard, as gains per output channel (None: both, unchanged): its audio
        route (StartEgress media), else the room composite's ``audio_mixing``."""
        participant = self.source.room.remote_participants.get(ref.participant_identity)
        if self.spec.source == "media":
            route = self._route(ref.sid, participant)
            return _CHANNEL_GAINS[route.channel] if route else None
        if self.spec.audio_mixing == "dual_channel_agent":
            agent = participant is not None and participant.kind == _AGENT
            return _CHANNEL_GAINS["left" if agent else "right"]
        if self.spec.audio_mixing == "dual_channel_alternate":
            self._audio_tracks_seen += 1
            return _CHANNEL_GAINS["left" if self._audio_tracks_seen % 2 else "right"]
        return None

    def _on_track_ended(self, ref: TrackRef) -> None:
        log.info("track %s ended", ref.sid)
        self._tracks.discard(ref.sid)
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
    def stop(self, reason: str = END_API) -> None:
        """End the recording; ``reason`` is one of LiveKit's end reasons (``contract.events.END_*``)."""
        if not self._stop.is_set():
            self._stop_reason = reason
            self._stop.set()

    def pause(self) -> None:
        """Record nothing until :meth:`resume`: the media clock stops, so no frame or sample reaches the
        encoder, and the sources' media is dropped. The outputs stay open."""
        self.clock.pause()
        self.source.pause()

    def resume(self) -> None:
        """Continue recording into the same outputs; PTS go on from where the pause stopped them. The
        mixer still holds the audio due just before the pause (its latency), so sound stays with picture."""
        self.source.resume()
        self.clock.resume()

    def set_layout(self, name: str) -> None:
        """Switch the composite layout (raises ValueError for an unknown name)."""
        if self.compositor is not None:
            self.compositor.set_layout(Layout.parse(name))
            log.info("layout %s", name)

    def _on_own_metadata(self, metadata: str) -> None:
        # livekit-server's UpdateLayout sets the recorder's metadata to {"layout": ...} (livekit pkg/service/egress.go)
        try:
            layout = json.loads(metadata or "{}").get("layout")
            if layout:
                self.set_layout(layout)
        except (ValueError, AttributeError) as e:
            log.warning("ignoring recorder metadata %r: %s", metadata[:200], e)

    def update_streams(self, add: list[str], remove: list[str]) -> None:
        """Start streaming to ``add`` and stop streaming to ``remove`` (UpdateStream)."""
        thread = self._thread
        if thread is None:
            return
        for url in remove:
            for out in self.streams:
                if out.url == url and out in thread.outputs:
                    thread.call(lambda out=out: (thread.outputs.remove(out), out.stop()))
        for url in add:
            out = StreamOutput(url, self._encoder)
            self.streams.append(out)
            thread.call(lambda out=out: thread.outputs.append(out))

    # ---- results ----------------------------------------------------------
    def _event(self, event: str, duration_ns: int, ended_at: int = 0, **kw) -> HandlerEvent:
        return HandlerEvent(event=event, ended_at=ended_at,
                           files=[f.result(duration_ns, ended_at) for f in self.files],
                           segments=[s.result(ended_at) for s in self.segments],
                           images=[i.result(ended_at) for i in self.images],
                           streams=[s.result() for s in self.streams], **kw)

    # ---- main loop --------------------------------------------------------
    async def run(self) -> None:
        """Connect, record until stopped, finish the outputs; emits events throughout.

        Never raises for media or connection errors: they become a ``failed`` event.
        """
        spec = self.spec
        error = await self._connect()
        if error:
            self.emit(HandlerEvent(event="failed", error=error, error_code=self.connect_error_code))
            return
        if self._stop.is_set():  # stopped before anything was recorded: no outputs, no success (LiveKit: ABORTED)
            await self.source.close()
            self.emit(HandlerEvent(event="aborted", error=MSG_STOPPED_BEFORE_STARTED, reason=self._stop_reason))
            return
        try:
            encoder = MediaEncoder(spec.encoding, video=spec.video, audio=spec.audio, audio_channels=AUDIO_CHANNELS)
            self.clock.start()
            start = self.clock.wall_start_ns
            enc = spec.encoding
            if any(t.upload for t in [*spec.files, *spec.segments, *spec.images]):
                self.uploads = UploadQueue(spec.upload_attempts, spec.upload_retry_base_s, spec.backup,
                                           spec.upload_retry_max_s)
            self.files = [FileOutput(t, encoder, start) for t in spec.files]
            self.segments = [SegmentsOutput(t, encoder, start, self.uploads) for t in spec.segments]
            self.images = [ImagesOutput(t, enc.width, enc.height, enc.framerate, start, self.uploads)
                           for t in spec.images]
            if spec.stream_uploads:
                self._start_streaming()
            self.streams = [StreamOutput(url, encoder) for url in spec.streams]
            self.websockets = [WebsocketOutput(spec.websocket_url)] if spec.websocket_url else []
        except Exception as e:  # bad encoder settings or an unwritable path
            await self.source.close()
            self.emit(HandlerEvent(event="failed", error=f"cannot open output: {e}"))
            return
        thread = EncoderThread(encoder, [*self.files, *self.segments, *self.images, *self.streams, *self.websockets])
        self._encoder, self._thread = encoder, thread
        self.emit(self._event("active", 0, started_at=self.clock.wall_start_ns, room_id=self.source.room_sid))
        error = ""
        try:
            end_ns = await self._tick_loop(thread)
        except Exception as e:
            log.exception("pipeline failed")
            error, end_ns = f"pipeline failed: {e}", self.clock.elapsed_ns()
        if self.dropped_frames:
            log.warning("skipped %d video frames: the encoder could not keep up", self.dropped_frames)
        self.emit(HandlerEvent(event="ending"))
        await self.source.close()
        try:
            await asyncio.to_thread(thread.finish)
        except Exception as e:
            error = error or f"encoding failed: {e}"
        error = error or next((w.error for w in self.websockets if w.error), "")
        error_code = 0
        if not error and self.source.connection_failed:
            error, error_code = MSG_ROOM_CONNECTION_FAILED, CODE_ROOM_CONNECTION
        ended = self.clock.wall_ns(end_ns)
        reconnects = list(self.source.reconnects)
        if error:
            event = self._event("failed", end_ns, ended, error=error, error_code=error_code, reconnects=reconnects)
        else:
            event = self._event("complete", end_ns, ended, reason=self._stop_reason, reconnects=reconnects,
                                limit_reached=self._stop_reason == END_LIMIT_REACHED)
        if self.uploads is not None:
            await asyncio.to_thread(self._finish_uploads, event)
            event.backup_storage_used = self.uploads.backup_used
        self.emit(event)

    def _start_streaming(self) -> None:
        """Stream MP4 files to object storage while they are recorded. Fragmented MP4 only grows, so it
        can go up as it is written; other containers rewrite their headers at the end and go up whole,
        as does a file whose stream cannot start (the recording goes on either way)."""
        for i, out in enumerate(self.files):
            target = out.target
            if target.format != "mp4" or not isinstance(target.upload, ObjectStorage):
                continue
            try:
                self._streamed[i] = StreamedUpload(target.upload, out.path, target.filename)
            except Exception as e:  # a destination obstore cannot even open: the upload at the end decides
                log.warning("cannot stream %s to %s: %s", target.filename, target.upload.describe(), e)

    def _finish_uploads(self, event: HandlerEvent) -> None:
        """Complete the uploads once every output is closed: streamed MP4s are completed (or, if that
        failed, uploaded whole), other files uploaded, and the queue (segments, playlists, images)
        drained. Each result's location becomes where its object ended up; a local file is deleted only
        once its object is confirmed."""
        uploads = self.uploads
        for i, (out, result) in enumerate(zip(self.files, event.files)):
            target = out.target
            if target.upload is None or not out.path.exists():
                continue
            streamed = self._streamed.get(i)
            if streamed is not None and streamed.finish():
                uploads.locations[(id(target.upload), target.filename)] = target.upload.location(target.filename)
                out.path.unlink()
            else:
                uploads.submit(target.upload, out.path, target.filename)
        uploads.drain()
        for out, result in zip(self.files, event.files):
            if out.target.upload is not None:
                result.path = uploads.location(out.target.upload, out.target.filename)
        event.segments = [s.result(event.ended_at) for s in self.segments]

    async def _tick_loop(self, thread: EncoderThread) -> int:
        """Emit video ticks and audio blocks against the clock until stopped; returns the end time in ns."""
        enc = self.spec.encoding
        frame_ns = 1_000_000_000 / enc.framerate
        block = enc.audio_frequency * self.audio_frame_ms // 1000
        progress_ns = int(self.spec.progress_interval_s * 1e9)
        next_progress = progress_ns
        video_pts = audio_pts = 0
        seen = False
        empty_since: int | None = None
        while True:
            now = self.clock.elapsed_ns()
            if self._stop.is_set():
                break
            if self.source.closed.is_set():
                log.info("source closed: %s", self.source.closed_reason)
                self.stop(END_SOURCE_CLOSED)
                continue
            # Ending by itself once what it records has gone, as LiveKit's egress does; real time,
            # since the media clock stands still while paused. While the room connection is being
            # re-established nobody is visible, and nobody has left.
            if self.source.reconnecting:
                empty_since = None
            elif self._present():
                seen, empty_since = True, None
            elif seen:
                empty_since = empty_since if empty_since is not None else time.monotonic_ns()
                if time.monotonic_ns() - empty_since >= self.spec.empty_timeout_s * 1e9:
                    log.info("%s left the room", "every participant" if self.spec.source == "room_composite"
                             else "what this egress records")
                    self.stop(END_SOURCE_CLOSED)
                    continue
            if thread.error is not None:
                raise thread.error
            if self.spec.max_duration_s and now >= self.spec.max_duration_s * 1e9:
                self.stop(END_LIMIT_REACHED)
                continue
            if self.compositor is not None:
                while video_pts * frame_ns <= now:
                    if thread.backlogged:
                        # The encoder is behind real time: skip this frame rather than queue without
                        # bound. The PTS gap is held by players as the previous frame; sync is kept.
                        self.dropped_frames += 1
                    else:
                        frame, _ = self.compositor.compose()
                        thread.submit_video(frame, video_pts)
                    video_pts += 1
            if self.mixer is not None:
                while audio_pts * 1e9 / enc.audio_frequency + self.mixer.latency_ns <= now:
                    thread.submit_audio(self.mixer.mix(block), audio_pts)
                    audio_pts += block
            if now >= next_progress:
                next_progress += progress_ns
                self.emit(self._event("progress", now))
            next_video = video_pts * frame_ns if self.compositor is not None else float("inf")
            next_audio = (audio_pts * 1e9 / enc.audio_frequency + self.mixer.latency_ns
                          if self.mixer is not None else float("inf"))
            delay = (min(next_video, next_audio) - self.clock.elapsed_ns()) / 1e9
            await asyncio.sleep(max(delay, 0))  # a stop is seen at the next tick (<= 20 ms)
        # Audio runs the mixer's latency behind: the buffered tail is still due, up to the video's end.
        if self.mixer is not None and self.compositor is not None:
            while audio_pts * 1e9 / enc.audio_frequency < video_pts * frame_ns:
                thread.submit_audio(self.mixer.mix(block), audio_pts)
                audio_pts += block
        # The outputs cover [0, end): whole frames and blocks already emitted define the end.
        ends = []
        if self.compositor is not None:
            ends.append(int(video_pts * frame_ns))
        if self.mixer is not None:
            ends.append(int(audio_pts * 1e9 / enc.audio_frequency))
        return max(ends) if ends else self.clock.elapsed_ns()
