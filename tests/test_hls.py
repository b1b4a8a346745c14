"""HLS segments output without servers: a generated picture and tone encoded as pyegress encodes them,
written as MPEG-TS and as fMP4 segments, checked with the ``m3u8`` parser and ffprobe."""

from __future__ import annotations

import io
import struct
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import m3u8
import numpy as np
import pytest

from pyegress.contract.encoding import EncodingSettings
from pyegress.contract.job import SegmentsTarget
from pyegress.devtools.probe import ffprobe
from pyegress.media.encode.encoder import MediaEncoder
from pyegress.media.outputs.base import Muxer
from pyegress.media.outputs.isobmff import TopLevelBoxes, fragment_samples, track_ids
from pyegress.media.outputs.segments import LIVE_WINDOW, SegmentsOutput

FPS, RATE = 30, 48000
WALL_START_NS = 1_700_000_000_000_000_000


def record(directory: Path, seconds: float, *, container: str, video: bool = True, segment_s: int = 2,
           suffix: str = "index", keyframe_s: float | None = None) -> SegmentsOutput:
    """``seconds`` of a changing picture and a 440 Hz tone through the encoder into a segments output
    (keyframes every ``keyframe_s``, by default every segment, as a request without one gets)."""
    settings = EncodingSettings(width=320, height=240, framerate=FPS, key_frame_interval=keyframe_s or segment_s)
    encoder = MediaEncoder(settings, video=video, audio=True)
    out = SegmentsOutput(SegmentsTarget(directory=str(directory), prefix="rec", playlist="rec.m3u8",
                                        live_playlist="live.m3u8", segment_duration=segment_s,
                                        container=container, suffix=suffix), encoder, WALL_START_NS)
    block = RATE // FPS
    for i in range(round(seconds * FPS)):
        if video:
            picture = np.full((240, 320, 3), (i * 7) % 256, np.uint8)
            out.write_packets("video", encoder.encode_video(
                av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p"), i))
        tone = (np.sin(2 * np.pi * 440 * (np.arange(block) + i * block) / RATE) * 8000).astype(np.int16)
        out.write_packets("audio", encoder.encode_audio(np.stack([tone, tone], 1), i * block))
    if video:
        out.write_packets("video", encoder.encode_video(None))
    out.write_packets("audio", encoder.encode_audio(None))
    out.close()
    encoder.close()
    return out


def decoded_frames(path: Path) -> int:
    """Video frames a decoder gets out of the file at ``path``."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def joined(directory: Path, init: str | None, name: str, into: Path) -> Path:
    """A segment as a player reads it: after the initialization section the playlist maps (if any)."""
    into.write_bytes((directory / init).read_bytes() + (directory / name).read_bytes() if init
                     else (directory / name).read_bytes())
    return into


@pytest.mark.parametrize("container", ["fmp4", "ts"])
def test_segments_of_both_containers(tmp_path, container):
    out = record(tmp_path, 7.1, container=container)
    playlist = m3u8.load(str(tmp_path / "rec.m3u8"))
    ext = ".m4s" if container == "fmp4" else ".ts"
    init = "rec_init.mp4" if container == "fmp4" else None
    assert playlist.version == (7 if container == "fmp4" else 3)
    assert playlist.playlist_type == "event" and playlist.is_endlist and playlist.target_duration == 2
    if container == "fmp4":  # RFC 8216 §4.3.2.5: the initialization section every segment needs
        assert [m.uri for m in playlist.segment_map] == [init]
    else:
        assert not playlist.segment_map
    names = [s.uri for s in playlist.segments]
    assert names == [f"rec_{i:05d}{ext}" for i in range(4)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*names, *([init] if init else []),
                                                                   "rec.m3u8", "live.m3u8"])
    durations = [s.duration for s in playlist.segments]
    assert all(abs(d - 2) <= 1 / FPS for d in durations[:-1]) and abs(sum(durations) - 7.1) < 1 / FPS
    for i, segment in enumerate(playlist.segments):
        path = joined(tmp_path, init, segment.uri, tmp_path / f"joined{i}.mp4")
        probe = ffprobe(path)
        assert (probe.stream("video")["codec_name"], probe.stream("audio")["codec_name"]) == ("h264", "aac")
        assert decoded_frames(path) == round(segment.duration * FPS), segment.uri  # EXTINF is what it holds
    # the playlist plays through (fMP4 without a decoding error; TS segments, each its own TS with
    # continuity counters from 0, make FFmpeg's HLS reader flag packets at segment joins)
    assert abs(ffprobe(tmp_path / "rec.m3u8").duration - 7.1) < 0.1
    subprocess.run(["ffmpeg", "-v", "error", *(["-xerror"] if init else []), "-i", str(tmp_path / "rec.m3u8"),
                    "-f", "null", "-"], check=True)
    result = out.result()
    files = sum((tmp_path / n).stat().st_size for n in [*names, *([init] if init else [])])
    assert (result.segment_count, result.size) == (4, files)
    assert abs(result.duration / 1e9 - sum(durations)) < 0.002


def test_fmp4_segments_continue_one_timeline(tmp_path):
    """Each fMP4 segment starts where the one before ended (``tfdt``), so the segments one after the
    other are one fragmented MP4: the init and every segment concatenated decode with no gap."""
    record(tmp_path, 6.1, container="fmp4")
    playlist = m3u8.load(str(tmp_path / "rec.m3u8"))
    whole = tmp_path / "whole.mp4"
    whole.write_bytes(b"".join((tmp_path / n).read_bytes() for n in ["rec_init.mp4",
                                                                      *(s.uri for s in playlist.segments)]))
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "packet=pts_time",
                            "-of", "csv=p=0", str(whole)], check=True, capture_output=True, text=True).stdout
    times = sorted(float(t) for t in probe.split())
    assert len(times) == round(6.1 * FPS)
    assert np.allclose(np.diff(times), 1 / FPS, atol=1e-4)  # every frame, evenly spaced
    assert abs(ffprobe(whole).duration - 6.1) < 0.05
    # picture and sound as encoded: the first frame at 0, AAC's first packet (priming) 1024 samples before
    # (the moov's edit lists say so: B-frames and priming make both tracks start before 0)
    starts = {s["codec_type"]: float(s["start_time"]) for s in ffprobe(whole).raw["streams"]}
    assert starts["video"] - starts["audio"] == pytest.approx(1024 / RATE, abs=1e-3)
    # the init is ftyp + moov only; each segment is whole fragments, with no init boxes of its own
    assert [t for t, _ in top_level(whole.read_bytes()[:(tmp_path / "rec_init.mp4").stat().st_size])] == \
        [b"ftyp", b"moov"]
    for segment in playlist.segments:
        types = [t for t, _ in top_level((tmp_path / segment.uri).read_bytes())]
        assert types[0] == b"moof" and set(types) == {b"moof", b"mdat"}


def test_fmp4_segments_of_several_keyframe_intervals(tmp_path):
    """``advanced.key_frame_interval`` shorter than the segments: a segment is several fragments."""
    record(tmp_path, 6.1, container="fmp4", keyframe_s=0.5)
    playlist = m3u8.load(str(tmp_path / "rec.m3u8"))
    assert [s.duration for s in playlist.segments] == [2.0, 2.0, 2.0, pytest.approx(0.1, abs=1e-3)]
    for i, segment in enumerate(playlist.segments[:-1]):
        assert [t for t, _ in top_level((tmp_path / segment.uri).read_bytes())] == [b"moof", b"mdat"] * 4
        path = joined(tmp_path, "rec_init.mp4", segment.uri, tmp_path / f"k{i}.mp4")
        assert decoded_frames(path) == 2 * FPS


@pytest.mark.parametrize("container", ["fmp4", "ts"])
def test_audio_only(tmp_path, container):
    out = record(tmp_path, 5.1, container=container, video=False)
    init = "rec_init.mp4" if container == "fmp4" else None
    playlist = m3u8.load(str(tmp_path / "rec.m3u8"))
    durations = [s.duration for s in playlist.segments]
    # AAC packets are 1024 samples: a segment ends at the first packet 2 s on
    assert durations[:-1] == [pytest.approx(94 * 1024 / RATE, abs=1e-3)] * 2 and len(durations) == 3
    for i, segment in enumerate(playlist.segments):
        path = joined(tmp_path, init, segment.uri, tmp_path / f"a{i}.{container}")
        probe = ffprobe(path)
        assert probe.stream("video") is None and probe.stream("audio")["codec_name"] == "aac"
        with av.open(str(path)) as media:  # the packets it holds span its EXTINF
            held = sum(p.duration * p.time_base for p in media.demux(audio=0) if p.size)
        # (TS does not carry a packet's length: its reader counts the last, shorter packet as whole)
        last = i == len(playlist.segments) - 1
        assert abs(held - segment.duration) < (1024 / RATE if last and container == "ts" else 1e-3), segment.uri
    assert out.result().segment_count == 3


def test_live_playlist_window_and_timestamp_names(tmp_path):
    record(tmp_path, 7.1, container="fmp4", segment_s=1, suffix="timestamp")
    full = m3u8.load(str(tmp_path / "rec.m3u8"))
    live = m3u8.load(str(tmp_path / "live.m3u8"))
    assert len(full.segments) == 8
    assert [s.uri for s in live.segments] == [s.uri for s in full.segments][-LIVE_WINDOW:]
    assert live.media_sequence == 8 - LIVE_WINDOW and live.playlist_type is None and live.version == 7
    assert [m.uri for m in live.segment_map] == ["rec_init.mp4"]
    for s in full.segments:  # named by their start's UTC time, which their program date-time says too
        stamp = s.current_program_date_time.strftime("%Y%m%d%H%M%S") + \
            f"{s.current_program_date_time.microsecond // 1000:03d}"
        assert s.uri == f"rec_{stamp}.m4s" and (tmp_path / s.uri).is_file()


def test_playlist_while_recording_and_map_uri_escaped(tmp_path):
    """Before the end a playlist has no ENDLIST and names only stored segments; a name that cannot stand in
    a quoted string (RFC 8216 §4.2) is percent-encoded in EXT-X-MAP."""
    directory = tmp_path / 'say "hi"'
    directory.mkdir()
    settings = EncodingSettings(width=160, height=120, framerate=FPS, key_frame_interval=1)
    encoder = MediaEncoder(settings, video=True, audio=False)
    out = SegmentsOutput(SegmentsTarget(directory=str(directory), prefix='a "b"', playlist="p.m3u8",
                                        segment_duration=1, container="fmp4"), encoder, WALL_START_NS)
    picture = av.VideoFrame.from_ndarray(np.zeros((120, 160, 3), np.uint8), format="rgb24").reformat(format="yuv420p")
    for i in range(3 * FPS + 5):
        out.write_packets("video", encoder.encode_video(picture, i))
    text = (directory / "p.m3u8").read_text()
    playlist = m3u8.loads(text)
    assert not playlist.is_endlist and len(playlist.segments) >= 2
    assert '#EXT-X-MAP:URI="a%20%22b%22_init.mp4"' in text
    assert all((directory / s.uri).is_file() for s in playlist.segments)
    out.close()
    encoder.close()
    assert m3u8.load(str(directory / "p.m3u8")).is_endlist


def top_level(data: bytes) -> list[tuple[bytes, int]]:
    boxes, i = [], 0
    while i < len(data):
        size, box_type = struct.unpack_from(">I4s", data, i)
        boxes.append((box_type, size))
        i += size
    return boxes


class Collect:
    """A BoxSink keeping every box whole."""

    def __init__(self):
        self.boxes: list[tuple[bytes, bytes]] = []

    def box_start(self, box_type, header):
        self.boxes.append((box_type, bytes(header)))

    def box_data(self, box_type, data):
        self.boxes[-1] = (box_type, self.boxes[-1][1] + bytes(data))

    def box_end(self, box_type):
        assert self.boxes[-1][0] == box_type


def test_top_level_boxes_whatever_the_writes():
    large = struct.pack(">I4sQ", 1, b"mdat", 16 + 5) + b"12345"  # a 64-bit size
    data = struct.pack(">I4s", 12, b"ftyp") + b"isom" + struct.pack(">I4s", 8, b"free") + large
    for step in (1, 3, 7, len(data)):
        sink = Collect()
        stream = TopLevelBoxes(sink)
        for i in range(0, len(data), step):
            assert stream.write(data[i:i + step]) == len(data[i:i + step])
        assert [t for t, _ in sink.boxes] == [b"ftyp", b"free", b"mdat"] and b"".join(b for _, b in sink.boxes) == data
    with pytest.raises(ValueError):
        TopLevelBoxes(Collect()).write(struct.pack(">I4s", 4, b"bad!"))


def test_track_ids_and_fragment_samples_of_ffmpegs_mp4():
    settings = EncodingSettings(width=160, height=120, framerate=FPS, key_frame_interval=1)
    encoder = MediaEncoder(settings, video=True, audio=True)
    sink = Collect()
    muxer = Muxer(TopLevelBoxes(sink), encoder, format="mp4",
                  options={"movflags": "frag_keyframe+empty_moov+default_base_moof"})
    picture = av.VideoFrame.from_ndarray(np.zeros((120, 160, 3), np.uint8), format="rgb24").reformat(format="yuv420p")
    for i in range(2 * FPS):
        muxer.mux("video", encoder.encode_video(picture, i))
        muxer.mux("audio", encoder.encode_audio(np.zeros((RATE // FPS, 2), np.int16), i * RATE // FPS))
    muxer.mux("video", encoder.encode_video(None))
    muxer.close()
    init = b"".join(b for t, b in sink.boxes if t in (b"ftyp", b"moov"))
    assert track_ids(init) == [1, 2]
    counts = [fragment_samples(b) for t, b in sink.boxes if t == b"moof"]
    assert [c[1] for c in counts] == [FPS, FPS]  # a fragment per keyframe, a second each
    assert sum(c.get(2, 0) for c in counts) > 90


def test_muxing_keeps_the_packets_timing():
    """The same packets go to every output: one muxing them (Matroska, FLV: 1/1000 s) must not round them
    for the next."""
    encoder = MediaEncoder(EncodingSettings(), video=False, audio=True)
    packets = [p for i in range(4) for p in encoder.encode_audio(np.zeros((1024, 2), np.int16), i * 1024)]
    before = [(p.pts, p.dts, p.duration, p.time_base) for p in packets]
    assert before[1][3] == Fraction(1, 48000)
    muxer = Muxer(io.BytesIO(), encoder, format="matroska")
    muxer.mux("audio", packets)
    muxer.close()
    assert [(p.pts, p.dts, p.duration, p.time_base) for p in packets] == before
