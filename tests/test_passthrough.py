"""The passthrough timeline (``media/passthrough.py``) on real encoded samples, without a room: Opus frame
sizes, silence over gaps, the start at a keyframe, the wait for a keyframe after a loss, pause and resume.
The samples are encoded here with PyAV and fed to the pipeline as the packet receiver would."""

from __future__ import annotations

import asyncio
from fractions import Fraction

import av
import numpy as np
import pytest

from pyegress.contract.job import FileTarget, JobSpec
from pyegress.media.passthrough import PassthroughPipeline, opus_samples
from pyegress.media.source import TrackRef
from pyegress.media.source.packets.stream import Sample

MS = 1_000_000


def test_opus_samples_follow_the_toc():
    assert opus_samples(b"\xfc\xff\xfe") == 960  # CELT FB 20 ms, one frame
    assert opus_samples(bytes([0x78 | 0])) == 960  # config 15: hybrid FB 20 ms
    assert opus_samples(bytes([0x08 | 0])) == 960  # config 1: SILK NB 20 ms
    assert opus_samples(bytes([0x18 | 0])) == 2880  # config 3: SILK NB 60 ms
    assert opus_samples(bytes([0xF8 | 1])) == 1920  # two 20 ms frames
    assert opus_samples(bytes([0xF8 | 3, 0x03])) == 2880  # code 3: three frames
    assert opus_samples(b"") == 0


def _opus_packets(seconds: float, hz: float = 440.0) -> list[bytes]:
    """20 ms Opus packets of a mono sine at 48 kHz, from libopus."""
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format = 48000, "mono", "s16"
    enc.bit_rate = 64000
    enc.open()
    t = np.arange(int(seconds * 48000)) / 48000
    pcm = (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16)
    packets = []
    for i in range(0, len(pcm) - 959, 960):
        frame = av.AudioFrame.from_ndarray(pcm[i:i + 960].reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 48000, i
        packets += [bytes(p) for p in enc.encode(frame)]
    return packets


def _vp8_packets(count: int, keyframe_every: int = 10) -> list[tuple[bytes, bool]]:
    enc = av.CodecContext.create("libvpx", "w")
    enc.width, enc.height, enc.pix_fmt = 160, 96, "yuv420p"
    enc.time_base = Fraction(1, 30)
    enc.gop_size = keyframe_every
    enc.options = {"deadline": "realtime", "lag-in-frames": "0"}
    enc.open()
    out = []
    for i in range(count):
        frame = av.VideoFrame.from_ndarray(np.full((96, 160, 3), (i * 7) % 255, np.uint8), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = i
        out += [(bytes(p), p.is_keyframe) for p in enc.encode(frame)]
    return out


async def _pipeline(tmp_path, kind: str, fmt: str) -> tuple[PassthroughPipeline, TrackRef]:
    spec = JobSpec(egress_id="EG_test", ws_url="ws://unused", token="t", room_name="r", source="track",
                   track_id="TR_x", passthrough=True, empty_timeout_s=0,
                   files=[FileTarget(path=str(tmp_path / f"out.{fmt}"), filename=f"out.{fmt}", format=fmt)])
    pipeline = PassthroughPipeline(spec, lambda event: None)
    pipeline.source.session_start_ns = 1_700_000_000 * 10**9
    ref = TrackRef("TR_x", kind, 1, "pub", "PA_x", codec="opus" if kind == "audio" else "vp8")
    return pipeline, ref


def _feed(pipeline, ref, sample: Sample) -> None:
    pipeline.on_sample(ref, sample)
    if pipeline.track is not None and not pipeline.files:
        pipeline._open_outputs()


async def test_audio_gap_becomes_silence_in_place(tmp_path):
    pipeline, ref = await _pipeline(tmp_path, "audio", "ogg")
    packets = _opus_packets(2.0)
    pts = 5_000 * MS
    for i, data in enumerate(packets):
        if 25 <= i < 50:  # 0.5 s the publisher did not send (muted, DTX)
            continue
        _feed(pipeline, ref, Sample(1, pts + i * 20 * MS, True, False, data))
    await asyncio.to_thread(pipeline._close_outputs)
    with av.open(str(tmp_path / "out.ogg")) as c:
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    assert abs(len(pcm) - 2.0 * 48000) <= 960  # the file is as long as the timeline
    rms = [float(np.sqrt(np.mean(pcm[int(a * 48000):int(b * 48000)] ** 2))) for a, b in
           ((0.1, 0.45), (0.55, 0.95), (1.05, 1.9))]
    assert rms[0] > 0.1 and rms[2] > 0.1 and rms[1] < 0.01, rms  # tone, silence where nothing came, tone
    assert pipeline._end == pytest.approx(2.0e9, abs=25 * MS)


async def test_video_starts_at_a_keyframe_and_skips_to_the_next_after_a_loss(tmp_path):
    pipeline, ref = await _pipeline(tmp_path, "video", "webm")
    frames = _vp8_packets(40, keyframe_every=10)
    assert frames[0][1] and frames[10][1] and not frames[5][1]
    for i, (data, key) in enumerate(frames[5:], start=5):  # joined mid-GOP: frames 5-9 cannot start a file
        _feed(pipeline, ref, Sample(1, 1_000 * MS + i * 33 * MS, key, i == 15, data))
    await asyncio.to_thread(pipeline._close_outputs)
    with av.open(str(tmp_path / "out.webm")) as c:
        written = [(round(float(p.pts * p.time_base) * 1000), p.is_keyframe) for p in c.demux(video=0) if p.size]
    # 10..14 written, 15 (after a loss) .. 19 left out, 20.. from the next keyframe
    expected = [i for i in range(10, 40) if not 15 <= i < 20]
    assert [ms for ms, _ in written] == [(i - 10) * 33 for i in expected]
    assert written[0][1] and written[5][1]
    assert pipeline.dropped_samples == 5


async def test_pause_leaves_a_stretch_out_without_a_gap(tmp_path):
    pipeline, ref = await _pipeline(tmp_path, "video", "webm")
    pipeline.source.request_keyframe = lambda sid: None  # no receiver here
    frames = _vp8_packets(60, keyframe_every=20)
    for i, (data, key) in enumerate(frames):
        if i == 10:
            pipeline.pause()
        if i == 30:
            pipeline.resume()
        _feed(pipeline, ref, Sample(1, i * 33 * MS, key, False, data))
    await asyncio.to_thread(pipeline._close_outputs)
    with av.open(str(tmp_path / "out.webm")) as c:
        times = [round(float(p.pts * p.time_base) * 1000) for p in c.demux(video=0) if p.size]
    # 0-9, then (waiting for a keyframe after the pause) 40-59, continuing one frame after 9
    assert times == [i * 33 for i in range(10)] + [330 + i * 33 for i in range(20)]
