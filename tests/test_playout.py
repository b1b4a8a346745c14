"""The packet path's playout: samples placed on the media clock by their own timestamps (unit tests,
real PyAV codecs; the e2e tests are in test_playout_e2e.py)."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from pyegress.media.compose.audio import PLACE_SLACK, AudioMixer
from pyegress.media.compose.video import VideoCompositor
from pyegress.media.source.base import TrackRef
from pyegress.media.source.packets.stream import Sample
from pyegress.media.sync.clock import MediaClock
from pyegress.media.sync.playout import OPUS_DELAY_SAMPLES, Playout

RATE = 48_000
FPS = 30
FRAME_NS = 1_000_000_000 // FPS
W, H = 320, 180


def block(value: int, n: int) -> np.ndarray:
    return np.full((n, 2), value, np.int16)


# ---- AudioMixer.place -----------------------------------------------------------------------------

def test_placed_samples_play_at_their_position_with_silence_before():
    mixer = AudioMixer(RATE, 2)
    mixer.add_track("a")
    mixer.place("a", 1000, block(100, 500))
    out = np.concatenate([mixer.mix(960), mixer.mix(960)])
    assert not out[:1000].any()
    assert (out[1000:1500] == 100).all()
    assert not out[1500:].any()


def test_a_step_within_the_slack_is_contiguous_and_a_late_head_is_cut():
    mixer = AudioMixer(RATE, 2)
    mixer.add_track("a")
    mixer.place("a", 0, block(1, 480))
    mixer.place("a", 480 + PLACE_SLACK // 2, block(2, 480))  # timestamp jitter: no gap, no overlap
    out = mixer.mix(960)
    assert (out[:480] == 1).all() and (out[480:] == 2).all()
    mixer.place("a", 760, block(3, 300))  # too late for jitter: its first 200 samples were mixed already
    assert mixer.late_samples == 200
    out = mixer.mix(200)
    assert (out[:100] == 3).all() and not out[100:].any()


def test_tracks_placed_in_any_arrival_order_line_up():
    mixer = AudioMixer(RATE, 2)
    for key in ("a", "b"):
        mixer.add_track(key)
    mixer.place("b", 960, block(20, 960))  # b's burst comes first
    mixer.place("a", 0, block(10, 960))
    mixer.place("a", 960, block(10, 960))
    out = np.concatenate([mixer.mix(960), mixer.mix(960)])
    assert (out[:960] == 10).all() and (out[960:] == 30).all()


def test_a_placed_track_that_runs_dry_starts_again_at_its_position():
    mixer = AudioMixer(RATE, 2)
    mixer.add_track("a")
    mixer.place("a", 0, block(5, 480))
    mixer.mix(960)  # it ran dry half-way: silence, and it stays primed
    mixer.place("a", 1200, block(6, 240))
    out = mixer.mix(960)
    assert not out[:240].any() and (out[240:480] == 6).all() and not out[480:].any()


# ---- Playout ------------------------------------------------------------------------------------

class FakeSource:
    def __init__(self, session_start_ns: int) -> None:
        self.session_start_ns = session_start_ns
        self.keyframes: list[str] = []
        self.dimensions: dict[str, tuple[int, int]] = {}

    def request_keyframe(self, sid: str) -> None:
        self.keyframes.append(sid)

    def set_dimensions(self, sid: str, width: int, height: int) -> None:
        self.dimensions[sid] = (width, height)


class Sink:
    """What the pipeline does with a playout's output (the parts the playout calls)."""

    def __init__(self, compositor: VideoCompositor | None, mixer: AudioMixer | None) -> None:
        self.compositor, self.mixer = compositor, mixer
        self.shown: list[int] = []  # Y value of each picture handed over

    def on_track(self, ref: TrackRef) -> None:
        if ref.kind == "video":
            self.compositor.add_tile(ref.sid, whole=ref.source == 3)
        else:
            self.mixer.add_track(ref.sid)

    def on_track_ended(self, ref: TrackRef) -> None: ...

    def on_video(self, ref: TrackRef, picture) -> None:
        self.shown.append(int(np.frombuffer(picture.data, np.uint8)[: picture.width * picture.height].mean()))
        self.compositor.update(ref.sid, picture.data, picture.width, picture.height)

    def on_speakers(self, identities) -> None: ...


def started_playout(sink: Sink, session_offset_ns: int = 0) -> tuple[Playout, FakeSource]:
    """A playout on a started clock, whose session began ``session_offset_ns`` after the clock."""
    clock = MediaClock()
    clock.start()
    playout = Playout(clock, sink, framerate=FPS, sample_rate=RATE, channels=2)
    playout.source = source = FakeSource(clock.wall_start_ns + session_offset_ns)
    playout.compositor = sink.compositor
    return playout, source


def vp8_samples(count: int, keyframe_every: int = 1000) -> list[tuple[bytes, bool]]:
    """``count`` VP8 frames, frame ``i`` a flat grey of luma ``40 + 4 * i``."""
    ctx = av.CodecContext.create("libvpx", "w")
    ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = W, H, "yuv420p", Fraction(1, FPS)
    ctx.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    ctx.gop_size, ctx.bit_rate = keyframe_every, 2_000_000
    out = []
    for i in range(count):
        frame = av.VideoFrame.from_ndarray(np.full((H * 3 // 2, W), 40 + 4 * i, np.uint8), format="yuv420p")
        frame.pts = i
        out += [(bytes(p), p.is_keyframe) for p in ctx.encode(frame)]
    out += [(bytes(p), p.is_keyframe) for p in ctx.encode(None)]
    return out


VIDEO = TrackRef("TR_V", "video", 1, "pub-0", "PA_0", codec="vp8")
AUDIO = TrackRef("TR_A", "audio", 2, "pub-0", "PA_0", codec="opus")


def test_each_tick_shows_the_picture_nearest_its_moment():
    sink = Sink(VideoCompositor(W, H), None)
    playout, source = started_playout(sink)
    playout.on_track(VIDEO)
    # samples 10 ms after each tick's moment, arriving all at once (a burst): each belongs to its tick
    for i, (data, key) in enumerate(vp8_samples(6)):
        playout.on_sample(VIDEO, Sample(1, i * FRAME_NS + 10_000_000, key, False, data))
    for tick in range(6):
        playout.compose(tick * FRAME_NS)
    assert sink.shown == [pytest.approx(40 + 4 * i, abs=2) for i in range(6)]


def test_a_sample_is_not_shown_before_its_time():
    sink = Sink(VideoCompositor(W, H), None)
    playout, _ = started_playout(sink, session_offset_ns=10 * FRAME_NS)  # its session began 10 frames in
    playout.on_track(VIDEO)
    data, key = vp8_samples(1)[0]
    playout.on_sample(VIDEO, Sample(1, 0, key, False, data))
    for tick in range(10):
        playout.compose(tick * FRAME_NS)
    assert sink.shown == []
    playout.compose(10 * FRAME_NS)
    assert len(sink.shown) == 1


def test_after_a_resume_video_waits_for_the_keyframe_it_asks_for():
    sink = Sink(VideoCompositor(W, H), None)
    playout, source = started_playout(sink)
    playout.on_track(VIDEO)
    samples = vp8_samples(8, keyframe_every=6)
    playout.on_sample(VIDEO, Sample(1, 0, samples[0][1], False, samples[0][0]))
    playout.compose(0)
    playout.resume()  # samples 1-4 were dropped while paused
    assert source.keyframes == ["TR_V"]
    for i in range(5, 8):
        playout.on_sample(VIDEO, Sample(1, i * FRAME_NS, samples[i][1], False, samples[i][0]))
        playout.compose(i * FRAME_NS)
    assert samples[6][1] and not samples[5][1]  # keyframe flags
    # sample 5 references the dropped ones: left out; the keyframe (6) and what follows are shown
    assert sink.shown == [pytest.approx(v, abs=2) for v in (40, 40 + 4 * 6, 40 + 4 * 7)]


def opus_tone(seconds: float, start_s: float) -> list[bytes]:
    """Opus packets (20 ms, 48 kHz stereo) of silence, then a full-scale-ish 1 kHz tone from ``start_s``."""
    t = np.arange(int(seconds * RATE)) / RATE
    pcm = np.where(t >= start_s, 12000 * np.sin(2 * np.pi * 1000 * t), 0).astype(np.int16)
    ctx = av.CodecContext.create("libopus", "w")
    ctx.sample_rate, ctx.layout, ctx.format = RATE, "stereo", "s16"
    packets = []
    for i in range(0, len(pcm), 960):
        chunk = np.repeat(pcm[i: i + 960], 2).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
        frame.sample_rate, frame.pts = RATE, i
        packets += [bytes(p) for p in ctx.encode(frame)]
    return packets


def test_sound_is_placed_at_its_timestamp_less_the_codec_delay():
    mixer = AudioMixer(RATE, 2)
    sink = Sink(None, mixer)
    playout, _ = started_playout(sink)
    playout.on_track(AUDIO)
    offset_ns = 100_000_000  # the track's samples belong 100 ms into the recording
    for i, data in enumerate(opus_tone(0.6, start_s=0.3)):
        playout.on_sample(AUDIO, Sample(2, offset_ns + i * 20_000_000, True, False, data))
    out = np.concatenate([mixer.mix(960) for _ in range(40)])[:, 0].astype(np.int32)
    onset = int(np.argmax(np.abs(out) > 3000))
    # the tone starts 0.3 s into the track: 0.4 s into the recording, to within a few samples (Opus'
    # own transient smearing), not 6.5 ms (its look-ahead) late
    assert abs(onset - int(0.4 * RATE)) <= 48, (onset, OPUS_DELAY_SAMPLES)


def test_each_tile_asks_for_the_layer_of_the_size_it_shows():
    sink = Sink(VideoCompositor(1280, 720), None)
    playout, source = started_playout(sink)
    playout.on_track(VIDEO)
    assert source.dimensions == {"TR_V": (1280, 720)}  # alone: the whole canvas
    share = TrackRef("TR_S", "video", 3, "pub-1", "PA_1", codec="vp8")  # TrackSource SCREEN_SHARE
    playout.on_track(share)
    assert source.dimensions == {"TR_V": (640, 720), "TR_S": (640, 720)}  # the boxes of a grid of 2
    # once 16:9 pictures are decoded: the camera fills its 640x720 box (720p needed), the share is
    # shown whole in it (640x360)
    data, key = vp8_samples(1)[0]
    for ref in (VIDEO, share):
        playout.on_sample(ref, Sample(1, 0, key, False, data))
    playout.compose(0)
    assert source.dimensions == {"TR_V": (1280, 720), "TR_S": (640, 360)}
