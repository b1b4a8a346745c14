"""HLS with fragmented-MP4 segments (``protocol: HLS_FMP4_PROTOCOL``) end to end: a real room recorded by
``pyegress serve`` from generated publishers, on local disk and uploaded to S3 (SeaweedFS) while
recording; playlists read with the ``m3u8`` parser, segments with ffprobe (``docs/hls.md``)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from pathlib import Path

import m3u8
import obstore
from livekit import api
from obstore.store import S3Store

from conftest import wait_status
from pyegress.devtools.probe import ffprobe
from support.s3_server import S3Server

S = api.EgressStatus
ENDED = (S.EGRESS_COMPLETE, S.EGRESS_FAILED, S.EGRESS_ABORTED, S.EGRESS_LIMIT_REACHED)
FMP4 = api.SegmentedFileProtocol.HLS_FMP4_PROTOCOL
FRAME_S = 1 / 30


async def record(egress_api, request: api.RoomCompositeEgressRequest, seconds: float, during=None):
    """Record ``seconds`` from ACTIVE (calling ``during(info)`` first, if given), stop; the final EgressInfo
    and how long it was ACTIVE (s)."""
    info = await egress_api.egress.start_room_composite_egress(request)
    active, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in (S.EGRESS_ACTIVE, *ENDED))
    assert active.status == S.EGRESS_ACTIVE, active.error
    t0 = time.monotonic()
    if during is not None:
        await during(active)
    await asyncio.sleep(max(0.0, seconds - (time.monotonic() - t0)))
    t_stop_ns = time.time_ns()
    await egress_api.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
    final, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in ENDED, timeout_s=90)
    assert final.status == S.EGRESS_COMPLETE, final.error
    return final, (t_stop_ns - active.started_at) / 1e9


def check_fmp4_playlist(directory: Path, playlist: m3u8.M3U8, init: str, *, segment_s: float) -> None:
    """What a player needs of an fMP4 media playlist and its files in ``directory``: version 7, the
    EXT-X-MAP before the segments, every listed file there; each segment, after the init, decodes as
    H.264/AAC and is ``segment_s`` long (the last one shorter)."""
    assert playlist.version == 7 and [m.uri for m in playlist.segment_map] == [init]
    assert (directory / init).is_file()
    for i, segment in enumerate(playlist.segments):
        assert (directory / segment.uri).is_file(), segment.uri
        if i < len(playlist.segments) - 1:
            assert abs(segment.duration - segment_s) <= FRAME_S + 1e-3, (segment.uri, segment.duration)
        joined = directory / f"joined-{segment.uri}.mp4"
        joined.write_bytes((directory / init).read_bytes() + (directory / segment.uri).read_bytes())
        probe = ffprobe(joined)
        assert probe.stream("video")["codec_name"] == "h264" and probe.stream("audio")["codec_name"] == "aac"
        subprocess.run(["ffmpeg", "-v", "error", "-xerror", "-i", str(joined), "-f", "null", "-"], check=True)
        joined.unlink()


async def test_fmp4_segments_on_disk(lkapi, egress_api, publishers, room_name, egress_server):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 2)
    final, seconds = await record(egress_api, api.RoomCompositeEgressRequest(
        room_name=room_name, segment_outputs=[api.SegmentedFileOutput(
            protocol=FMP4, filename_prefix="fmp4/{room_name}", segment_duration=2, live_playlist_name="live.m3u8")]),
        9)

    (seg,) = final.segment_results
    assert seg.playlist_name == f"fmp4/{room_name}.m3u8" and seg.live_playlist_name == "fmp4/live.m3u8"
    directory = Path(seg.playlist_location).parent
    assert directory == egress_server.recordings_dir / "fmp4"
    playlist = m3u8.load(seg.playlist_location)
    assert playlist.playlist_type == "event" and playlist.is_endlist and playlist.target_duration == 2
    names = [s.uri for s in playlist.segments]
    assert names == [f"{room_name}_{i:05d}.m4s" for i in range(len(names))] and len(names) == seg.segment_count
    assert seg.segment_count == round(seconds / 2 + 0.49)  # 2 s each, the last one shorter
    check_fmp4_playlist(directory, playlist, f"{room_name}_init.mp4", segment_s=2)
    durations = sum(s.duration for s in playlist.segments)
    assert abs(durations - seconds) <= 0.5 and abs(seg.duration / 1e9 - durations) <= 0.01
    assert abs(ffprobe(seg.playlist_location).duration - durations) <= 0.1  # FFmpeg's HLS reader plays it through
    assert seg.size == sum((directory / n).stat().st_size for n in [f"{room_name}_init.mp4", *names])

    live = m3u8.load(seg.live_playlist_location)
    assert live.playlist_type is None and live.version == 7 and [m.uri for m in live.segment_map] == \
        [f"{room_name}_init.mp4"]
    assert [s.uri for s in live.segments] == names[-5:] and live.media_sequence == len(names) - 5


def s3_bucket(s3: S3Server) -> S3Store:
    return S3Store("recordings", endpoint=s3.endpoint, access_key_id="x", secret_access_key="x",
                   region="us-east-1", virtual_hosted_style_request=False, client_options={"allow_http": True})


def listed(store, prefix: str) -> dict[str, int]:
    return {o["path"]: o["size"] for batch in obstore.list(store, prefix=prefix) for o in batch}


async def test_fmp4_segments_uploaded_to_s3(lkapi, egress_api, publishers, room_name, egress_server, tmp_path):
    """Each segment is in the bucket before a playlist in the bucket names it, the init before all of them."""
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    with S3Server(tmp_path / "s3") as s3:
        bucket = s3_bucket(s3)
        seen: list[int] = []

        async def playlists_name_only_stored_files(info):
            for _ in range(100):  # while ACTIVE, every version of the live playlist the bucket has
                objects = listed(bucket, f"{room_name}/")
                if f"{room_name}/live.m3u8" in objects:
                    text = bytes(obstore.get(bucket, f"{room_name}/live.m3u8").bytes()).decode()
                    live = m3u8.loads(text)
                    assert [m.uri for m in live.segment_map] == ["seg_init.mp4"]
                    listed_now = listed(bucket, f"{room_name}/")
                    assert f"{room_name}/seg_init.mp4" in listed_now
                    assert all(f"{room_name}/{s.uri}" in listed_now for s in live.segments), text
                    seen.append(len(live.segments))
                await asyncio.sleep(0.05)

        s3_upload = api.S3Upload(bucket="recordings", endpoint=s3.endpoint, force_path_style=True,
                                 region="us-east-1", access_key="AKIDEXAMPLE", secret="s3-secret")
        final, seconds = await record(egress_api, api.RoomCompositeEgressRequest(
            room_name=room_name, segment_outputs=[api.SegmentedFileOutput(
                protocol=FMP4, filename_prefix="{room_name}/seg", playlist_name="seg.m3u8",
                live_playlist_name="live.m3u8", segment_duration=1, s3=s3_upload)]), 6,
            during=playlists_name_only_stored_files)
        assert seen and max(seen) >= 2  # the playlists were checked while segments came in
        assert not final.backup_storage_used
        (seg,) = final.segment_results
        assert seg.playlist_location == f"{s3.endpoint}/recordings/{room_name}/seg.m3u8"
        assert seg.live_playlist_location == f"{s3.endpoint}/recordings/{room_name}/live.m3u8"

        objects = listed(bucket, f"{room_name}/")
        for key in objects:  # everything to check locally, as a player would fetch it
            (tmp_path / Path(key).name).write_bytes(bytes(obstore.get(bucket, key).bytes()))
        playlist = m3u8.load(str(tmp_path / "seg.m3u8"))
        assert playlist.is_endlist and len(playlist.segments) == seg.segment_count >= 5
        assert all(re.fullmatch(r"seg_\d{5}\.m4s", s.uri) for s in playlist.segments)
        check_fmp4_playlist(tmp_path, playlist, "seg_init.mp4", segment_s=1)
        stored = [f"{room_name}/seg_init.mp4", *(f"{room_name}/{s.uri}" for s in playlist.segments)]
        assert sum(objects[k] for k in stored) == seg.size
        assert abs(ffprobe(tmp_path / "seg.m3u8").duration - seg.duration / 1e9) < 0.1
        assert abs(seg.duration / 1e9 - seconds) <= 0.5
        attributes = obstore.get(bucket, f"{room_name}/{playlist.segments[0].uri}").attributes
        assert attributes.get("Content-Type") == "video/iso.segment"
        # uploaded files are gone from the recordings directory, once confirmed
        assert not [p for p in (egress_server.recordings_dir / room_name).glob("seg*") if p.suffix != ".json"]
