"""Playout: a packet source's samples put on the media clock by their own timestamps.

The packet receiver gives every sample a PTS on one session timeline (LiveKit's sync engine: RTCP
sender reports align each participant's audio with their video), and the Unix time of PTS 0.
A sample's place on the media clock is therefore its capture time less the clock's start (and
the pauses so far), not the moment it happened to arrive. The tick loop runs ``delay_ns`` behind
the clock (:class:`~.ticker.Ticker`), so that everything due at a tick has arrived by then:

- audio is decoded as it comes and placed in the mixer at its position
  (:meth:`~..compose.audio.AudioMixer.place`): sound from different publishers, or arriving
  in bursts, plays where it belongs;
- video samples wait, encoded, until a tick is composed; then each track decodes what is due
  and its newest picture goes to the compositor. Every sample is decoded in order (the
  reference chain), only the shown picture is converted.

It also asks the SFU, for every tile, for the simulcast layer that fits the tile: the size the
compositor shows the track's pictures at (a 16:9 camera filling a 640x360 box needs 640x360).
"""

from __future__ import annotations

import logging
from collections import deque

from ..source.base import TrackRef
from ..source.packets.decode import AudioDecoder, VideoDecoder
from ..source.packets.stream import Sample
from .clock import MediaClock

log = logging.getLogger(__name__)

#: Default playout delay (ns): samples normally arrive within tens of ms of their PTS; a sample
#: still missing after this (waiting for a retransmission) is late: its picture is skipped, its
#: sound is cut.
PLAYOUT_DELAY_NS = 400_000_000
#: The Opus encoder's look-ahead (samples at 48 kHz; RFC 7845 §4.2, what libopus reports as pre-skip): a
#: packet's decoded sound begins this long before its timestamp's moment, so it is placed that much earlier.
OPUS_DELAY_SAMPLES = 312


class Playout:
    """A :class:`~..source.base.PacketSink` for the packet source and a :class:`~..source.base.Picture`
    for the tick loop.

    ``sink`` is the pipeline (its ``on_track``/``on_track_ended``/``on_video``/``on_speakers``, and
    ``mixer``); audio is decoded to ``channels`` int16 at ``sample_rate`` Hz. Set :attr:`source` (the
    packet source: its ``session_start_ns``, ``set_dimensions`` and ``request_keyframe``) and
    :attr:`compositor` (the video compositor; None without video) before samples arrive.
    """

    def __init__(self, clock: MediaClock, sink, *, framerate: int, sample_rate: int, channels: int,
                 delay_ns: int = PLAYOUT_DELAY_NS) -> None:
        self.clock, self.sink = clock, sink
        self.sample_rate, self.channels, self.delay_ns = sample_rate, channels, delay_ns
        self._half_frame_ns = 500_000_000 // framerate
        self._opus_delay = OPUS_DELAY_SAMPLES * sample_rate // 48_000
        self.source = None
        self.compositor = None
        # sid → decoder, samples to show with their media time (None: not known when it came)
        self._video: dict[str, tuple[TrackRef, VideoDecoder, deque[tuple[int | None, Sample]]]] = {}
        self._audio: dict[str, AudioDecoder] = {}
        self._layers: dict[str, tuple[int, int]] = {}  # sid → the size last asked of the SFU
        self._sizes: dict[str, tuple[int, int]] = {}  # sid → size of its newest picture (for the log)
        self._gap: set[str] = set()  # video tracks whose next sample follows a gap (a pause)

    # ---- media time ---------------------------------------------------------
    def media_ns(self, pts_ns: int) -> int | None:
        """Where a sample of session PTS ``pts_ns`` belongs on the media clock (ns), or None before the
        clock or the session has started."""
        start = self.source.session_start_ns if self.source is not None else 0
        if not start or not self.clock.wall_start_ns:
            return None
        return start + pts_ns - self.clock.wall_start_ns - self.clock.paused_ns

    # ---- from the packet source (PacketSink) -------------------------------
    def on_track(self, ref: TrackRef) -> None:
        if ref.kind == "video":
            self._video[ref.sid] = (ref, VideoDecoder(ref.codec), deque())
        else:
            self._audio[ref.sid] = AudioDecoder(self.sample_rate, self.channels)
        self.sink.on_track(ref)
        self.fit_layers()

    def on_track_ended(self, ref: TrackRef) -> None:
        self._video.pop(ref.sid, None)
        self._audio.pop(ref.sid, None)
        self._layers.pop(ref.sid, None)
        self._sizes.pop(ref.sid, None)
        self.sink.on_track_ended(ref)
        self.fit_layers()

    def on_speakers(self, identities: list[str]) -> None:
        self.sink.on_speakers(identities)

    def on_muted(self, sid: str, muted: bool) -> None:
        self.sink.on_muted(sid, muted)
        self.fit_layers()

    def on_sample(self, ref: TrackRef, sample: Sample) -> None:
        if ref.kind == "video":
            track = self._video.get(ref.sid)
            if track is not None:
                if ref.sid in self._gap:
                    self._gap.discard(ref.sid)
                    sample.loss = True  # its reference may be among the samples dropped
                # placed now: a pause that ends later must not move what was captured before it
                track[2].append((self.media_ns(sample.pts_ns), sample))
            return
        decoder = self._audio.get(ref.sid)
        at = self.media_ns(sample.pts_ns)
        if decoder is None:
            return
        pcm = decoder.decode(sample)  # decoded even before the clock starts: Opus carries state
        if at is not None and self.sink.mixer is not None:
            position = at * self.sample_rate // 1_000_000_000 - self._opus_delay
            if position >= 0:
                self.sink.mixer.place(ref.sid, position, pcm)

    # ---- to the tick loop (Picture) -----------------------------------------
    def compose(self, at_ns: int | None = None):
        """The composite at media time ``at_ns``: each track's samples due by then are decoded and its
        newest picture shown (a track with nothing new keeps its last). A sample is due up to half a
        frame early: each tick shows the picture nearest its moment, not the last one before it."""
        at = (self.clock.elapsed_ns() - self.delay_ns if at_ns is None else at_ns) + self._half_frame_ns
        refit = False
        for ref, decoder, queue in self._video.values():
            while queue:
                due, sample = queue[0]
                if due is None:
                    due = self.media_ns(sample.pts_ns)
                if due is not None and due > at:
                    break
                decoder.decode(queue.popleft()[1])
            picture = decoder.picture()
            if picture is not None:
                self.sink.on_video(ref, picture)
                if self._sizes.get(ref.sid) != (picture.width, picture.height):
                    self._sizes[ref.sid] = (picture.width, picture.height)
                    log.info("track %s decodes at %dx%d", ref.sid, picture.width, picture.height)
                    refit = True
        composed = self.compositor.compose(at_ns)
        if refit or self.compositor.rearranged:  # a new speaker on the stage, a tile moved to the carousel
            self.fit_layers()
        return composed

    def set_layout(self, name: str) -> None:
        self.sink.set_layout(name)

    # ---- control ------------------------------------------------------------
    def resume(self) -> None:
        """After a pause (the source dropped samples): every video track's next sample follows a gap, so
        it waits for a keyframe, asked for now. What was queued before the pause is still shown."""
        for ref, _, _ in self._video.values():
            self._gap.add(ref.sid)
            if self.source is not None:
                self.source.request_keyframe(ref.sid)

    def fit_layers(self) -> None:
        """Ask the SFU for each video track's simulcast layer at the size its tile shows it at (the
        compositor's :meth:`~..compose.video.VideoCompositor.display_sizes`; a hidden tile: the
        smallest), whenever that size changes."""
        if self.compositor is None or self.source is None:
            return
        for sid, size in self.compositor.display_sizes().items():
            size = size or (1, 1)
            if sid in self._video and self._layers.get(sid) != size:
                self._layers[sid] = size
                self.source.set_dimensions(sid, *size)
