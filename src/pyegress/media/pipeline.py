"""The pipeline: source → sync → compose/mix → encode once → outputs → storage.

One :class:`Pipeline` serves every egress that encodes; only its source differs, chosen by
:func:`~.source.open_source`: a room (room composite, participant, track composite, track and
``media`` egress, which differ only in the tracks their :class:`~.source.selection.TrackSelection`
takes) or a web page. A room comes through the livekit SDK as decoded media, timed by its arrival,
or through the packet receiver as encoded samples that a :class:`~.sync.playout.Playout` decodes
and places by the sync engine's timestamps (``JobSpec.receiver``).
A track written as the publisher sent it takes :mod:`.passthrough` instead; both
share their life as a :class:`~.recording.Recording`.

Timing model: one :class:`~.sync.clock.MediaClock` starts when the egress goes
ACTIVE (backdated to the start a source reports, e.g. a page's start signal), and
the :class:`~.sync.ticker.Ticker` samples the picture at exactly ``framerate``
and pulls the mixer in 20 ms blocks (docs/architecture.md). A pause stops that
clock and the source's reading until resumed, so the outputs continue without a
gap in their timeline and A/V stay aligned (the mixer keeps what it had buffered).
"""

from __future__ import annotations

import logging
import time

from livekit.protocol import models

from ..contract.job import JobSpec
from ..contract.layouts import Layout
from .compose.audio import AudioMixer
from .compose.roster import Roster
from .compose.video import VideoCompositor
from .encode.encoder import MediaEncoder
from .encode.thread import EncoderThread
from .outputs.file import FileOutput
from .outputs.images import ImagesOutput
from .outputs.preview import PreviewOutput
from .outputs.segments import SegmentsOutput
from .outputs.stream import StreamOutput
from .outputs.uploads import OutputUploads
from .outputs.websocket import WebsocketOutput
from .recording import Recording
from .source import TrackRef, open_source, receives_packets
from .source.base import I420Frame
from .sync.clock import MediaClock
from .sync.playout import Playout
from .sync.ticker import Ticker

log = logging.getLogger(__name__)

#: Audio frame size (ms) read from the SDK, and the mixer's block, when low latency matters: with video
#: (the mixer's latency is the delay between picture and sound to make up for) or a websocket listener.
LIVE_AUDIO_FRAME_MS = 20
#: Otherwise (audio-only files, segments, streams) larger frames: 5x fewer events per track.
BULK_AUDIO_FRAME_MS = 100
AUDIO_CHANNELS = 2


class Pipeline(Recording):
    """Records what ``spec`` selects into its outputs, decoded, composed and encoded once.

    ``emit`` receives :class:`HandlerEvent` s; call :meth:`stop` (any time) to end
    the recording, :meth:`set_layout` to switch layout, :meth:`pause` and
    :meth:`resume` to leave out a stretch of the source. The source delivers its
    media through this object's ``on_*`` methods (:class:`~.source.base.MediaSink`).
    """

    def __init__(self, spec: JobSpec, emit) -> None:
        super().__init__(spec, emit)
        enc = spec.encoding
        self.clock = MediaClock()
        self.audio_frame_ms = LIVE_AUDIO_FRAME_MS if spec.video or spec.websocket_url else BULK_AUDIO_FRAME_MS
        self.mixer = AudioMixer.for_frames(enc.audio_frequency, AUDIO_CHANNELS, self.audio_frame_ms) \
            if spec.audio else None
        self._speaker_tracks: dict[str, str] = {}  # participant identity -> camera track SID
        # Encoded samples are decoded and timed by a playout between the source and this pipeline
        self.playout = Playout(self.clock, self, framerate=enc.framerate, sample_rate=enc.audio_frequency,
                               channels=AUDIO_CHANNELS) \
            if receives_packets(spec) else None
        self.source = open_source(spec, self.playout or self, audio_channels=AUDIO_CHANNELS,
                                  audio_frame_ms=self.audio_frame_ms)
        # The source's own picture (a web page), or its video tracks composed here; a room composite's as
        # LiveKit's participant tiles, the others' bare
        self.roster = Roster() if spec.source == "room_composite" else None
        self.compositor = VideoCompositor(enc.width, enc.height, Layout.parse(spec.layout), roster=self.roster) \
            if spec.video and self.source.picture is None else None
        self.picture = self.compositor if self.compositor is not None else self.source.picture
        if self.playout is not None:
            self.playout.source, self.playout.compositor = self.source, self.compositor
            self.picture = self.playout if self.compositor is not None else None
        self.dropped_frames = 0  # video frames skipped because the encoder fell behind
        self._encoder: MediaEncoder | None = None
        self._thread: EncoderThread | None = None
        # the live preview takes the frames the encoder is given; only egresses with a picture have one
        self.preview_output = PreviewOutput(spec.preview_path) \
            if spec.preview_path and self.picture is not None else None

    # ---- media from the source (MediaSink) --------------------------------
    def on_track(self, ref: TrackRef) -> None:
        log.info("track %s (%s) of %s", ref.sid, ref.kind, ref.participant_identity)
        if ref.kind == "video":
            self.compositor.add_tile(ref.sid, whole=ref.source == models.TrackSource.SCREEN_SHARE)
            self._speaker_tracks.setdefault(ref.participant_identity, ref.sid)
        else:
            self.mixer.add_track(ref.sid, ref.gains)
        if self.roster is not None:
            self.roster.add_track(ref.sid, ref.participant_identity, ref.participant_name, ref.kind, ref.source,
                                  ref.muted)

    def on_track_ended(self, ref: TrackRef) -> None:
        log.info("track %s ended", ref.sid)
        if ref.kind == "video":
            self.compositor.remove_tile(ref.sid)
            if self._speaker_tracks.get(ref.participant_identity) == ref.sid:
                del self._speaker_tracks[ref.participant_identity]
        else:
            self.mixer.remove_track(ref.sid)
        if self.roster is not None:
            self.roster.remove_track(ref.sid)

    def on_video(self, ref: TrackRef, frame: I420Frame) -> None:
        self.compositor.update(ref.sid, frame.data, frame.width, frame.height)

    def on_audio(self, ref: TrackRef, samples) -> None:
        self.mixer.push(ref.sid, samples)

    def on_speakers(self, identities: list[str]) -> None:
        if self.roster is not None:
            self.roster.set_speakers(identities, time.monotonic())
        elif self.compositor is not None and identities:
            self.compositor.set_active_speaker(self._speaker_tracks.get(identities[0]))

    def on_muted(self, sid: str, muted: bool) -> None:
        log.info("track %s %s", sid, "muted" if muted else "unmuted")
        if self.roster is not None:
            self.roster.set_muted(sid, muted)

    # ---- control ----------------------------------------------------------
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
        if self.playout is not None:
            self.playout.resume()

    def set_layout(self, name: str) -> None:
        """Switch the composite layout (raises ValueError for an unknown name); a source that lays itself
        out (a web page) ignores it."""
        if self.compositor is not None:
            self.compositor.set_layout(Layout.parse(name))
            log.info("layout %s", name)
            if self.playout is not None:
                self.playout.fit_layers()
        elif self.picture is not None:
            self.picture.set_layout(name)

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

    def preview(self) -> None:
        """Write the live preview for the next few seconds (:mod:`.outputs.preview`)."""
        if self.preview_output is not None:
            self.preview_output.request()

    # ---- the recording ----------------------------------------------------
    def _open_outputs(self) -> None:
        """Start the clock and open the encoder and every output on it."""
        spec, enc = self.spec, self.spec.encoding
        encoder = MediaEncoder(enc, video=spec.video, audio=spec.audio, audio_channels=AUDIO_CHANNELS)
        self.clock.start(since_s=self.source.started_s)
        start = self.wall_start_ns = self.clock.wall_start_ns
        self.uploads = OutputUploads.for_spec(spec)
        queue = self.uploads.queue if self.uploads is not None else None
        self.files = [FileOutput(t, encoder, start) for t in spec.files]
        self.segments = [SegmentsOutput(t, encoder, start, queue) for t in spec.segments]
        self.images = [ImagesOutput(t, enc.width, enc.height, enc.framerate, start, queue) for t in spec.images]
        if spec.stream_uploads and self.uploads is not None:
            self.uploads.stream(self.files)
        self.streams = [StreamOutput(url, encoder) for url in spec.streams]
        self.websockets = [WebsocketOutput(spec.websocket_url)] if spec.websocket_url else []
        self._encoder = encoder
        previews = [self.preview_output] if self.preview_output is not None else []
        self._thread = EncoderThread(encoder, [*self.files, *self.segments, *self.images, *self.streams,
                                               *self.websockets, *previews])

    async def _record(self) -> int:
        enc = self.spec.encoding
        ticker = Ticker(self.clock, self._thread, picture=self.picture, mixer=self.mixer, framerate=enc.framerate,
                        sample_rate=enc.audio_frequency, audio_block=enc.audio_frequency * self.audio_frame_ms // 1000,
                        progress_interval_s=self.spec.progress_interval_s, on_progress=self._progress,
                        delay_ns=self.playout.delay_ns if self.playout is not None else 0)
        try:
            return await ticker.run(self._ended())
        finally:
            if ticker.dropped_frames:
                log.warning("skipped %d video frames: the encoder could not keep up", ticker.dropped_frames)
            self.dropped_frames = ticker.dropped_frames

    def _close_outputs(self) -> None:
        self._thread.finish()

    def _elapsed_ns(self) -> int:
        return self.clock.elapsed_ns()

    def _wall_ns(self, elapsed_ns: int) -> int:
        return self.clock.wall_ns(elapsed_ns)
