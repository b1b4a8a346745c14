"""A track written as its publisher sent it: source → sync → outputs, no decoder, no encoder.

The packet receiver (:mod:`.source.packets`) hands over the track's encoded samples at PTS on
LiveKit's sync timeline; :class:`PassthroughPipeline` muxes them unchanged into the file its
codec calls for, as LiveKit's track egress does: VP8/VP9 in WebM, H.264 in MP4, Opus in OGG
(docs/compatibility.md).

Timeline rules (docs/architecture.md):

- the file starts at the first keyframe (earlier samples cannot be decoded), and after a loss
  the receiver could not repair, video waits for the next keyframe (the receiver asks the
  publisher for one) rather than write pictures that decode to garbage;
- video PTS are the sync engine's, made strictly increasing;
- audio is written sample-contiguous, as Ogg needs (RFC 7845 §4 has no way to mark a gap): where
  the publisher sent nothing (muted, DTX) the gap is filled with Opus silence frames, so sound
  stays where the sync timeline puts it;
- a pause leaves a stretch out; the file continues from where it stopped, without a gap.
"""

from __future__ import annotations

import asyncio
import io
import logging
import struct
import time
from fractions import Fraction

import av

from ..contract.job import JobSpec
from .outputs.file import FileOutput
from .outputs.uploads import OutputUploads
from .recording import Recording
from .source import SourceError, TrackRef, TrackSelection
from .source.base import CODE_INTERNAL, CODE_ROOM_CONNECTION
from .source.packets import PacketSource
from .source.packets.stream import KeyframeGate, Sample

log = logging.getLogger(__name__)

#: Opus is decoded at 48 kHz whatever the publisher's input rate (RFC 7587 §4.1).
OPUS_RATE = 48_000
_NS = Fraction(1, 1_000_000_000)
_OPUS_TB = Fraction(1, OPUS_RATE)
#: 20 ms of silence: CELT fullband, one frame, mono/stereo (RFC 6716 §3.1 TOC 0xF8/0xFC; the
#: payload bytes code an all-zero frame); decoders play it as 960 zero samples.
_OPUS_SILENCE = {1: b"\xf8\xff\xfe", 2: b"\xfc\xff\xfe"}
_SILENCE_SAMPLES = 960
#: Audio that lags its place on the timeline by this much gets silence inserted before it.
AUDIO_GAP_NS = 30_000_000
#: How long (ms) the receiver holds samples to send them together: a file need not get them sooner, and
#: each batch costs this process a wakeup, which costs more than writing the samples (an Opus track:
#: 0.0020 core at 200 ms, 0.0010-0.0015 at 1 s). A pause or resume takes effect up to this much early or
#: late, and a crash of the receiver loses what it holds; progress and the size limit see a batch at a time.
FLUSH_MS = 1000
#: How often (s) a recording looks at what ends it besides a stop: presence, the duration limit.
CHECK_S = 1.0
#: Containers for a codec's samples, as LiveKit's track egress chooses them.
CONTAINERS = {"vp8": "webm", "vp9": "webm", "h264": "mp4", "opus": "ogg"}
#: How long (s) a simulcast track's file waits for a keyframe of the publication's top layer: the SFU
#: starts a new subscriber on a low layer and switches up within about a second.
TOP_LAYER_WAIT_S = 3.0


def opus_samples(packet: bytes) -> int:
    """Samples at 48 kHz in an Opus ``packet`` (RFC 6716 §3.1: frame size from the TOC config,
    frame count from its code), 0 for an empty packet."""
    if not packet:
        return 0
    toc = packet[0]
    config = toc >> 3
    if config < 12:  # SILK: 10, 20, 40, 60 ms
        frame = (480, 960, 1920, 2880)[config & 3]
    elif config < 16:  # hybrid: 10, 20 ms
        frame = (480, 960)[config & 1]
    else:  # CELT: 2.5, 5, 10, 20 ms
        frame = (120, 240, 480, 960)[config & 3]
    code = toc & 3
    frames = 1 if code == 0 else 2 if code < 3 else (packet[1] & 0x3F if len(packet) > 1 else 0)
    return frame * frames


def _annexb_nals(data: bytes) -> list[bytes]:
    """The NAL units of an H.264 Annex B byte stream (ITU-T H.264 Annex B start codes)."""
    nals, i, n = [], 0, len(data)
    starts = []
    while (i := data.find(b"\x00\x00\x01", i)) >= 0:
        starts.append(i + 3)
        i += 3
    for k, s in enumerate(starts):
        end = starts[k + 1] - 3 if k + 1 < len(starts) else n
        nals.append(data[s:end].rstrip(b"\x00") if k + 1 < len(starts) else data[s:end])
    return [nal for nal in nals if nal]


class CopiedTrack:
    """The stream a track's samples are written to, learnt from its first keyframe (or first Opus
    packet): codec, picture size, and the codec's setup data a container header needs (H.264's SPS
    and PPS, Opus's identification header, RFC 7845 §5.1). A :class:`~.outputs.base.StreamTemplates`.

    Raises:
        ValueError: the first sample cannot set up a stream (H.264 without SPS/PPS, undecodable video).
    """

    def __init__(self, ref: TrackRef, first: bytes) -> None:
        self.ref, self.codec, self.kind = ref, ref.codec, ref.kind
        self.width = self.height = 0
        self.channels = 0
        self.extradata: bytes | None = None
        if self.kind == "audio":
            self.channels = 2 if first and first[0] & 0x04 else 1  # the TOC's stereo flag
            # OpusHead: version 1, channels, pre-skip 0 (a live stream has no encoder delay to trim),
            # input rate, gain 0, mapping family 0
            self.extradata = b"OpusHead" + struct.pack("<BBHIhB", 1, self.channels, 0, OPUS_RATE, 0, 0)
            return
        if self.codec == "h264":
            params = [nal for nal in _annexb_nals(first) if nal[0] & 0x1F in (7, 8)]
            if not any(nal[0] & 0x1F == 7 for nal in params) or not any(nal[0] & 0x1F == 8 for nal in params):
                raise ValueError("H.264 keyframe without SPS and PPS")
            self.extradata = b"".join(b"\x00\x00\x00\x01" + nal for nal in params)
        self.width, self.height = _picture_size(self.codec, first)

    @property
    def container(self) -> str:
        """The file format its samples go in (``webm``, ``mp4``, ``ogg``)."""
        return CONTAINERS[self.codec]

    def add_streams(self, container: av.container.OutputContainer) -> dict[str, av.stream.Stream]:
        # From a template, so the container never opens an encoder for it (PyAV opens the codec of a
        # stream made by add_stream when the header is written, and an encoder's own setup data would
        # replace the publisher's); the stream's parameters are the ones set here.
        stream = container.add_stream_from_template(_template(self.codec))
        ctx = stream.codec_context
        if self.kind == "audio":
            ctx.sample_rate = OPUS_RATE
            ctx.layout = "stereo" if self.channels == 2 else "mono"
        else:
            ctx.width, ctx.height = self.width, self.height
            # no nominal rate: the samples' PTS are the timing (PyAV's default of 24 fps would be written
            # as the track's frame duration, and players and ffprobe would believe it)
            ctx.framerate = Fraction(0, 1)
        if self.extradata is not None:
            ctx.extradata = self.extradata
        return {self.kind: stream}


_template_container: av.container.OutputContainer | None = None
_templates: dict[str, av.stream.Stream] = {}


def _template(codec: str) -> av.stream.Stream:
    """A stream of ``codec`` that is never written, to create output streams from (kept for the process)."""
    global _template_container
    if codec not in _templates:
        if _template_container is None:
            _template_container = av.open(io.BytesIO(), "w", format="matroska")
        _templates[codec] = _template_container.add_stream(codec, rate=OPUS_RATE) if codec == "opus" \
            else _template_container.add_stream(codec)
    return _templates[codec]


def _picture_size(codec: str, keyframe: bytes) -> tuple[int, int]:
    """Width and height (px) of a keyframe, decoded once (no container field needs more).

    Raises:
        ValueError: it does not decode.
    """
    decoder = av.CodecContext.create(codec, "r")
    try:
        frames = [*decoder.decode(av.Packet(keyframe)), *decoder.decode(None)]
    except av.FFmpegError as e:
        raise ValueError(f"the first {codec} keyframe does not decode: {e}") from None
    if not frames:
        raise ValueError(f"the first {codec} keyframe gave no picture")
    return frames[0].width, frames[0].height


class PassthroughPipeline(Recording):
    """Records one track's samples unchanged into ``spec.files`` (one container per codec, see
    :data:`CONTAINERS`). ACTIVE comes with the first keyframe: before it there is nothing a file
    could start with. The source delivers through :meth:`on_sample` (a
    :class:`~.source.base.PacketSink`).
    """

    def __init__(self, spec: JobSpec, emit) -> None:
        super().__init__(spec, emit)
        self.source = PacketSource(spec.ws_url, spec.token, selection=TrackSelection(spec), sink=self,
                                   room_name=spec.room_name, flush_ms=FLUSH_MS)
        self.track: CopiedTrack | None = None
        self._ready = asyncio.Event()  # the first keyframe came, or the track went without one
        self._pending: list[tuple[TrackRef, Sample]] = []  # samples that came before the outputs opened
        self._first_pts = 0  # receiver timeline (ns) of the file's start
        self._shift = 0  # receiver time left out by pauses (ns)
        self._end = 0  # end of what is written (ns on the file's timeline)
        self._last_pts = -1  # last video PTS written (ns)
        self._last_interval = 33_000_000  # last video frame interval (ns): the last frame's duration
        self._audio_samples = 0  # audio written so far (48 kHz samples)
        self._keyframes = KeyframeGate(waiting=False)  # the file starts at a keyframe already
        self._first_keyframe_at = 0.0  # monotonic s of the first keyframe seen, while waiting for the top layer
        self._rebase = False  # the next sample continues the file where a pause stopped it
        self._paused = False
        self._error = ""

    @property
    def dropped_samples(self) -> int:
        """Video samples left out while waiting for a keyframe."""
        return self._keyframes.skipped

    # ---- samples from the source (PacketSink) -----------------------------
    def on_track(self, ref: TrackRef) -> None:
        log.info("track %s (%s, %s) of %s", ref.sid, ref.kind, ref.codec, ref.participant_identity)
        track = self.track
        if track is not None and ref.sid != track.ref.sid and (ref.kind, ref.codec) == (track.kind, track.codec):
            # the same track published again (the publisher rejoined a restarted server): the file goes on
            # with it, from its first keyframe
            track.ref = ref
            if ref.kind == "video":
                self._keyframes.restart()

    def on_track_ended(self, ref: TrackRef) -> None:
        log.info("track %s ended", ref.sid)
        self._ready.set()

    def on_speakers(self, identities: list[str]) -> None:
        pass

    def on_muted(self, sid: str, muted: bool) -> None:
        pass

    def on_sample(self, ref: TrackRef, sample: Sample) -> None:
        if self._paused or self._error or (self.track is not None and ref.sid != self.track.ref.sid):
            return
        if self.track is None:
            if ref.kind == "video" and not sample.keyframe:
                return
            try:
                track = CopiedTrack(ref, sample.data)
            except ValueError as e:
                log.warning("track %s: %s; waiting for the next keyframe", ref.sid, e)
                return
            if self._below_top_layer(track):
                return
            self.track = track
            self._first_pts = sample.pts_ns
            self._ready.set()
        if not self.files:
            self._pending.append((ref, sample))
            return
        try:
            self._write(ref, sample)
        except (av.FFmpegError, OSError) as e:  # a full disk: the egress fails, the file stays playable
            log.error("writing %s failed: %s", self.files[0].path, e)
            self._error = f"writing the file failed: {e}"
            self.stop()

    def _below_top_layer(self, track: CopiedTrack) -> bool:
        """Whether the file should not start with this keyframe: it is of a lower layer than the
        publication's top one (LiveKit's TrackInfo width and height), and the top layer may still come
        (:data:`TOP_LAYER_WAIT_S`); the file then starts at the top layer rather than switch up in it."""
        pub = self.source.publications.get(track.ref.sid)
        if track.kind != "video" or pub is None or track.width * track.height >= 0.9 * pub.width * pub.height:
            return False
        now = time.monotonic()
        if not self._first_keyframe_at:
            self._first_keyframe_at = now
            log.info("track %s starts on a %dx%d layer; waiting for its %dx%d layer", track.ref.sid, track.width,
                     track.height, pub.width, pub.height)
        return now - self._first_keyframe_at < TOP_LAYER_WAIT_S

    def _write(self, ref: TrackRef, sample: Sample) -> None:
        if ref.kind == "video" and not self._keyframes.admit(sample):
            return
        position = sample.pts_ns - self._first_pts - self._shift  # its place on the file's timeline (ns)
        if self._rebase:  # the first sample after a pause: the stretch in between is left out
            self._shift += position - self._end
            position, self._rebase = self._end, False
        if ref.kind == "video":
            self._write_video(sample, position)
        else:
            self._write_audio(sample.data, position)

    def _write_video(self, sample: Sample, position: int) -> None:
        pts = max(position, self._last_pts + 1_000_000) if self._last_pts >= 0 else max(position, 0)
        if self._last_pts >= 0:
            self._last_interval = pts - self._last_pts
        self._last_pts = pts
        packet = av.Packet(sample.data)
        packet.pts = packet.dts = pts
        packet.time_base = _NS
        packet.is_keyframe = sample.keyframe
        self._mux("video", packet)
        self._end = pts + self._last_interval

    def _write_audio(self, data: bytes, position: int) -> None:
        # A stretch without packets (muted, DTX, loss) becomes silence, so what follows plays at its time.
        silence = _OPUS_SILENCE[self.track.channels]
        while position - self._end >= AUDIO_GAP_NS:
            self._mux_audio(silence, _SILENCE_SAMPLES)
        self._mux_audio(data, opus_samples(data))

    def _mux_audio(self, data: bytes, samples: int) -> None:
        packet = av.Packet(data)
        packet.pts = packet.dts = self._audio_samples
        packet.duration = samples
        packet.time_base = _OPUS_TB
        self._mux("audio", packet)
        self._audio_samples += samples
        self._end = self._audio_samples * 1_000_000_000 // OPUS_RATE

    def _mux(self, kind: str, packet: av.Packet) -> None:
        for f in self.files:
            f.write_packets(kind, [packet])

    # ---- control ----------------------------------------------------------
    def pause(self) -> None:
        """Write nothing until :meth:`resume`; the file stays open."""
        self._paused = True

    def resume(self) -> None:
        """Continue the file where the pause stopped it; video waits for a keyframe, asked for now."""
        if not self._paused:
            return
        self._paused, self._rebase = False, True
        if self.track is not None and self.track.kind == "video":
            self._keyframes.restart()
            self.source.request_keyframe(self.track.ref.sid)

    # ---- the recording ----------------------------------------------------
    async def _await_media(self) -> None:
        stop = asyncio.ensure_future(self._stop.wait())
        ready = asyncio.ensure_future(self._ready.wait())
        closed = asyncio.ensure_future(self.source.closed.wait())
        try:
            await asyncio.wait([stop, ready, closed], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (stop, ready, closed):
                task.cancel()
        if self.track is None and not self._stop.is_set():
            source = self.source
            if source.connection_failed:
                raise SourceError(f"{source.closed_reason} before any media arrived", CODE_ROOM_CONNECTION)
            raise SourceError(source.failure or "the track ended before any media arrived", CODE_INTERNAL)

    def _open_outputs(self) -> None:
        start = self.source.session_start_ns + self._first_pts if self.source.session_start_ns else time.time_ns()
        self.wall_start_ns = start
        self.uploads = OutputUploads.for_spec(self.spec)
        files = []
        try:
            for target in self.spec.files:
                if target.format != self.track.container:  # the service chose it from the publication's codec
                    raise ValueError(f"{self.track.codec} samples cannot go in {target.format}")
                files.append(FileOutput(target, self.track, start))
        except BaseException:
            for f in files:
                f.close()
            raise
        self.files = files
        if self.spec.stream_uploads and self.uploads is not None:
            self.uploads.stream(self.files)
        pending, self._pending = self._pending, []
        for ref, sample in pending:
            self.on_sample(ref, sample)

    async def _record(self) -> int:
        # Samples are written as they come; this only watches for the end. A stop or a closed source
        # wakes it at once; presence, progress and the duration limit are looked at every CHECK_S
        # (a wakeup costs about what a batch of samples does).
        ended = self._ended()
        interval, limit_ns = self.spec.progress_interval_s, self.spec.max_duration_s * 1e9
        next_progress = time.monotonic() + interval
        stop = asyncio.ensure_future(self._stop.wait())
        closed = asyncio.ensure_future(self.source.closed.wait())
        try:
            while not ended(self._end):
                timeout = CHECK_S
                if limit_ns:  # media time runs with wall time; it moves a batch of samples at a time
                    timeout = min(timeout, max((limit_ns - self._end) / 1e9, 0.1))
                if interval:
                    timeout = min(timeout, next_progress - time.monotonic())
                await asyncio.wait([stop, closed], timeout=max(timeout, 0.0), return_when=asyncio.FIRST_COMPLETED)
                if interval and time.monotonic() >= next_progress:
                    next_progress += interval
                    self._progress(self._end)
        finally:
            stop.cancel()
            closed.cancel()
        if self._error:
            raise RuntimeError(self._error)
        return self._end

    def _close_outputs(self) -> None:
        if self.dropped_samples:
            log.warning("left out %d video samples while waiting for keyframes", self.dropped_samples)
        errors = []
        for f in self.files:
            try:
                f.close()
            except Exception as e:  # every file is closed, the first error fails the egress
                errors.append(e)
        if errors:
            raise errors[0]

    async def _finish(self, end_ns: int, error: str) -> None:
        # the samples the receiver still held when it left are in the file too
        await super()._finish(max(end_ns, self._end), error)

    def _elapsed_ns(self) -> int:
        return self._end

    def _wall_ns(self, elapsed_ns: int) -> int:
        return self.wall_start_ns + elapsed_ns + self._shift
