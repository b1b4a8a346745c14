"""Track egress writes the publisher's bitstream unchanged, byte for byte, end to end.

Known encoded files (made here with ffmpeg) are published as they are by ``filepub``
(``tests/support/filepub``: the Go server SDK's own IVF, H.264 and Ogg readers, looping), a real
livekit-server forwards them, pyegress records the track, and the file's packets, read back with
PyAV, must be a contiguous run of the source file's packets (wrapping round where the source loops),
each byte-identical; there is no decoder or encoder in between, so anything else is a change of the
data.

What is compared, per codec:

- VP8 → WebM: every Matroska block against the IVF frame, whole.
- Opus → Ogg: every Ogg packet against the source's Ogg packet, whole (so no silence may be inserted
  and none of the publisher's packets left out).
- H.264 → MP4: MP4 samples are length-prefixed NAL units (ISO/IEC 14496-15), the source is Annex B;
  both are split into NAL units and compared as lists, each NAL byte for byte. The publisher side
  does not send everything in the file: the SDK's H.264 reader drops SEI NALs and pion's payloader
  drops access unit delimiters and filler data, so those NAL types (6, 9, 12) are taken out of the
  source's access units first. SPS and PPS travel in-band (a STAP-A before each IDR) and must be in
  the recorded sample exactly where the source has them; the MP4's avcC must hold the same SPS/PPS.

Also: the first recorded video packet is a keyframe, timestamps increase with the frame (20 ms Opus
packet) spacing the publisher sent.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import time
from pathlib import Path

import av
import pytest
from livekit import api

from support.filepub import ensure_built, file_publisher
from test_passthrough_e2e import _record

FPS = 30
SOURCE_S = 3  # shorter than a recording: every run crosses the publisher's loop point at least once
RECORD_S = 4.5
_DROPPED_BY_PUBLISHER = {6, 9, 12}  # H.264 SEI (lksdk's reader), AUD and filler data (pion's payloader)


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """The published files: VP8 IVF and H.264 Annex B of the counter pattern (keyframe every second,
    as a WebRTC encoder would code it: realtime VP8; Constrained Baseline H.264, no B-frames, one
    slice per picture), and 48 kHz mono Opus in 20 ms packets of pink noise (never two equal packets)."""
    ensure_built()  # filepub: a cold Go build takes about a minute, once (it is cached), here rather than in a test
    d = tmp_path_factory.mktemp("bitstream")
    video = ["-f", "lavfi", "-i", f"testsrc2=size=640x360:rate={FPS}", "-t", str(SOURCE_S), "-pix_fmt", "yuv420p"]
    _ffmpeg(*video, "-c:v", "libvpx", "-g", str(FPS), "-b:v", "800k", "-deadline", "realtime", str(d / "v.ivf"))
    _ffmpeg(*video, "-c:v", "libx264", "-profile:v", "baseline", "-bf", "0", "-g", str(FPS), "-preset", "veryfast",
            "-x264-params", "slices=1", "-f", "h264", str(d / "v.h264"))
    _ffmpeg("-f", "lavfi", "-i", "anoisesrc=color=pink:seed=7:amplitude=0.2:sample_rate=48000", "-t", str(SOURCE_S),
            "-c:a", "libopus", "-b:a", "64k", "-frame_duration", "20", "-ac", "1", str(d / "a.ogg"))
    return {"vp8": d / "v.ivf", "h264": d / "v.h264", "opus": d / "a.ogg"}


def _packets(path: Path, kind: str) -> list[av.Packet]:
    with av.open(str(path)) as c:
        return [p for p in c.demux(c.streams.get(**{kind: 0})[0]) if p.size]


def _extradata(path: Path) -> bytes:
    with av.open(str(path)) as c:
        return bytes(c.streams.video[0].codec_context.extradata or b"")


def _annexb_nals(data: bytes) -> list[bytes]:
    """The NAL units of Annex B ``data``; the zero byte of a following 4-byte start code is not part
    of a NAL (a NAL never ends in 0x00: rbsp_trailing_bits, H.264 §7.4.1)."""
    starts, i = [], 0
    while (i := data.find(b"\x00\x00\x01", i)) >= 0:
        starts.append(i + 3)
        i += 3
    ends = [s - 3 for s in starts[1:]] + [len(data)]
    return [data[s:e].rstrip(b"\x00") for s, e in zip(starts, ends)]


def _length_prefixed_nals(data: bytes, size: int = 4) -> list[bytes]:
    nals, i = [], 0
    while i < len(data):
        n = int.from_bytes(data[i:i + size], "big")
        nals.append(data[i + size:i + size + n])
        i += size + n
    assert i == len(data), "a length prefix runs past the sample"
    return nals


def _avcc_parameter_sets(extradata: bytes) -> tuple[int, list[bytes]]:
    """NAL length size and the SPS/PPS of an avcC box (ISO/IEC 14496-15 §5.3.3.1)."""
    assert extradata[0] == 1, f"extradata is not avcC: {extradata[:8].hex()}"
    length_size = (extradata[4] & 3) + 1
    sets, i = [], 5
    for mask in (0x1F, 0xFF):  # numOfSequenceParameterSets (5 bits), then numOfPictureParameterSets
        count, i = extradata[i] & mask, i + 1
        for _ in range(count):
            n = int.from_bytes(extradata[i:i + 2], "big")
            sets.append(extradata[i + 2:i + 2 + n])
            i += 2 + n
    return length_size, sets


def _assert_contiguous_run(recorded: list[bytes], source: list[bytes], what: str) -> int:
    """``recorded`` is ``source[i], source[i+1], ...`` (modulo its length: the publisher loops), each
    equal byte for byte; returns ``i``."""
    assert len(set(source)) == len(source), "the source has repeated packets: a run would be ambiguous"
    assert recorded, f"no {what} packets recorded"
    try:
        start = source.index(recorded[0])
    except ValueError:
        raise AssertionError(f"the first recorded {what} packet ({len(recorded[0])} bytes, "
                             f"{recorded[0][:16].hex()}...) is none of the source's") from None
    for k, got in enumerate(recorded):
        want = source[(start + k) % len(source)]
        if got != want:
            where = next((j for j, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
            elsewhere = [j for j, s in enumerate(source) if s == got]
            raise AssertionError(
                f"recorded {what} packet {k} (source packet {(start + k) % len(source)} expected) differs: "
                f"{len(got)} bytes vs {len(want)}, first difference at byte {where}: "
                f"got {got[where:where + 16].hex()} want {want[where:where + 16].hex()}; "
                f"the recorded packet is source packet(s) {elsewhere or 'none'}")
    return start


def _assert_spacing(times: list[float], interval: float, what: str) -> None:
    steps = [b - a for a, b in zip(times, times[1:])]
    assert all(s > 0 for s in steps), f"{what} timestamps do not increase: {steps}"
    assert abs(statistics.median(steps) - interval) < 0.002, f"{what} median step {statistics.median(steps)}"
    assert all(0.5 * interval < s < 1.5 * interval for s in steps), \
        f"{what} steps off the publisher's {interval} s: {sorted(steps)[:3]} .. {sorted(steps)[-3:]}"


async def _listed(lkapi, room: str, sids: dict[str, str]) -> None:
    """Wait until livekit-server lists the tracks (it does once their media arrives): StartTrackEgress
    looks them up there."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        participants = (await lkapi.room.list_participants(api.ListParticipantsRequest(room=room))).participants
        if set(sids.values()) <= {t.sid for p in participants for t in p.tracks}:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"tracks {sids} not listed in room {room}")


async def _record_file(livekit, lkapi, egress_api, room_name: str, tmp_path: Path, kind: str, **files) -> str:
    """Publish ``files`` (video=..., audio=...) and record the ``kind`` track for ``RECORD_S``; its path."""
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    with file_publisher(livekit, room_name, "filepub", fps=FPS, log=tmp_path / "filepub.log", **files) as pub:
        await _listed(lkapi, room_name, pub.sids)
        final = await _record(egress_api, egress_api.egress.start_track_egress(api.TrackEgressRequest(
            room_name=room_name, track_id=pub.sids[kind],
            file=api.DirectFileOutput(filepath="bitstream/{track_id}"))), RECORD_S)
    (result,) = final.file_results
    return result.location


async def test_vp8_webm_is_the_published_ivf_frames(livekit, lkapi, egress_api, room_name, media, tmp_path):
    path = await _record_file(livekit, lkapi, egress_api, room_name, tmp_path, "video", video=media["vp8"])
    assert path.endswith(".webm")
    recorded, source = _packets(Path(path), "video"), _packets(media["vp8"], "video")
    assert recorded[0].is_keyframe and bytes(recorded[0])[0] & 1 == 0  # container flag and VP8 frame tag
    _assert_contiguous_run([bytes(p) for p in recorded], [bytes(p) for p in source], "VP8")
    assert len(recorded) >= (RECORD_S - 1) * FPS
    _assert_spacing([float(p.pts * p.time_base) for p in recorded], 1 / FPS, "VP8")


async def test_h264_mp4_is_the_published_nal_units(livekit, lkapi, egress_api, room_name, media, tmp_path):
    path = await _record_file(livekit, lkapi, egress_api, room_name, tmp_path, "video", video=media["h264"])
    assert path.endswith(".mp4")
    recorded, source = _packets(Path(path), "video"), _packets(media["h264"], "video")
    length_size, parameter_sets = _avcc_parameter_sets(_extradata(Path(path)))
    sent = [[nal for nal in _annexb_nals(bytes(p)) if nal[0] & 0x1F not in _DROPPED_BY_PUBLISHER] for p in source]
    assert all(sum(1 for nal in au if nal[0] & 0x1F in (1, 5)) == 1 for au in sent), "one slice per picture"
    got = [_length_prefixed_nals(bytes(p), length_size) for p in recorded]
    assert recorded[0].is_keyframe and [nal[0] & 0x1F for nal in got[0]] == [7, 8, 5], \
        [nal[0] & 0x1F for nal in got[0]]
    assert parameter_sets == got[0][:2] == sent[0][:2], "avcC SPS/PPS are not the publisher's"
    # an access unit's NAL list, as one comparable value: each NAL with its length
    pack = lambda nals: b"".join(len(n).to_bytes(4, "big") + n for n in nals)  # noqa: E731
    _assert_contiguous_run([pack(au) for au in got], [pack(au) for au in sent], "H.264 access unit")
    assert len(recorded) >= (RECORD_S - 1) * FPS
    # the SDK's H.264 reader sends a picture every 33 ms (lksdk defaultH264FrameDuration)
    _assert_spacing([float(p.pts * p.time_base) for p in recorded], 0.033, "H.264")


async def test_opus_ogg_is_the_published_packets(livekit, lkapi, egress_api, room_name, media, tmp_path):
    path = await _record_file(livekit, lkapi, egress_api, room_name, tmp_path, "audio", audio=media["opus"])
    assert path.endswith(".ogg")
    recorded, source = _packets(Path(path), "audio"), _packets(media["opus"], "audio")
    _assert_contiguous_run([bytes(p) for p in recorded], [bytes(p) for p in source], "Opus")
    assert len(recorded) >= (RECORD_S - 1) * 50
    _assert_spacing([float(p.pts * p.time_base) for p in recorded], 0.020, "Opus")
