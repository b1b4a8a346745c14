"""Room composite end to end: real livekit-server, generated publishers, livekit-api's own client."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import psutil
import pytest
from livekit import api

from conftest import EMPTY_TIMEOUT_S, wait_status
from media_checks import audio_rms, distinct_colours, frame_at, tile_chroma
from pyegress.devtools.probe import ffprobe

S = api.EgressStatus
ACTIVE = (S.EGRESS_ACTIVE,)
ENDED = (S.EGRESS_COMPLETE, S.EGRESS_FAILED, S.EGRESS_ABORTED, S.EGRESS_LIMIT_REACHED)


async def record(egress_api, request, seconds: float):
    """Start, wait ACTIVE, record ``seconds``, stop, wait for the end.

    Returns ``(final info, seconds from ACTIVE (its started_at) to the stop call, info seen while active)``.
    """
    info = await egress_api.egress.start_room_composite_egress(request)
    assert info.status == S.EGRESS_STARTING and info.egress_id.startswith("EG_")
    active, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in ACTIVE + ENDED)
    assert active.status == S.EGRESS_ACTIVE, active.error
    await asyncio.sleep(seconds)
    t_stop_ns = time.time_ns()
    stopping = await egress_api.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
    assert stopping.status == S.EGRESS_ENDING
    final, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in ENDED)
    return final, (t_stop_ns - active.started_at) / 1e9, active


async def test_room_composite_grid_mp4(lkapi, egress_api, publishers, room_name, egress_server):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 3)
    request = api.RoomCompositeEgressRequest(
        room_name=room_name, layout="grid", file_outputs=[api.EncodedFileOutput(filepath="{room_name}/{time}.mp4")])

    info = await egress_api.egress.start_room_composite_egress(request)
    assert info.room_name == room_name and info.room_id.startswith("RM_")
    active, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status == S.EGRESS_ACTIVE)
    listed = await egress_api.egress.list_egress(api.ListEgressRequest(room_name=room_name, active=True))
    assert [i.egress_id for i in listed.items] == [info.egress_id]
    assert active.started_at > 0
    await asyncio.sleep(6)
    t_stop_ns = time.time_ns()
    await egress_api.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
    final, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in ENDED)
    assert final.status == S.EGRESS_COMPLETE, final.error
    assert final.ended_at > final.started_at > 0 and final.updated_at >= final.ended_at

    (result,) = final.file_results
    path = Path(result.location)
    assert path.is_file() and path.is_relative_to(egress_server.recordings_dir.resolve())
    assert result.filename.startswith(f"{room_name}/") and result.filename.endswith(".mp4")
    assert result.size == path.stat().st_size > 100_000
    probe = ffprobe(path)
    video, audio = probe.stream("video"), probe.stream("audio")
    assert (video["codec_name"], video["profile"], video["width"], video["height"]) == ("h264", "Main", 1280, 720)
    assert 29.0 <= probe.video_fps <= 31.0
    assert audio["codec_name"] == "aac" and int(audio["sample_rate"]) in (44100, 48000)
    expected = (t_stop_ns - active.started_at) / 1e9  # ACTIVE → stop
    assert abs(probe.duration - expected) <= 0.5, (probe.duration, expected)
    assert abs(result.duration / 1e9 - probe.duration) <= 0.2
    assert not (await egress_api.egress.list_egress(api.ListEgressRequest(room_name=room_name, active=True))).items
    for _ in range(50):  # the worker process is gone once its egress is complete
        if not [p for p in psutil.Process(egress_server.pid).children() if info.egress_id in p.cmdline()]:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the worker is still running after EGRESS_COMPLETE")
    manifest = json.loads(Path(final.manifest_location).read_text())  # LiveKit's {filepath}.json
    assert final.manifest_location == str(path) + ".json"
    assert manifest["egress_id"] == info.egress_id and manifest["file_results"][0]["filename"] == result.filename

    # the picture is a composite of three different participants, and there is sound
    colours = tile_chroma(frame_at(path, probe.duration / 2), 1280, 720, 3)
    assert distinct_colours(colours) == 3, colours
    assert audio_rms(path, probe.duration / 2, 1.0) > 0.01


async def test_late_joiner_and_leaver(lkapi, egress_api, publishers, room_name):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    first = publishers(room_name, 1)
    request = api.RoomCompositeEgressRequest(room_name=room_name, file_outputs=[api.EncodedFileOutput()])
    info = await egress_api.egress.start_room_composite_egress(request)
    active, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status == S.EGRESS_ACTIVE)
    await asyncio.sleep(2)
    publishers(room_name, 2, first_index=1)  # joins later
    await asyncio.sleep(3)
    t_leave = (time.time_ns() - active.started_at) / 1e9  # media time when the first one leaves
    first.stop()  # leaves; the others keep the room going
    await asyncio.sleep(3)
    await egress_api.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
    final, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in ENDED)
    assert final.status == S.EGRESS_COMPLETE, final.error
    path = final.file_results[0].location
    assert Path(path).name.startswith(room_name)  # default {room_name}-{time}.mp4
    probe = ffprobe(path)
    assert probe.duration > 7.5
    # before the first one left: three tiles (late joiners were subscribed); at the end: two
    assert distinct_colours(tile_chroma(frame_at(path, t_leave - 0.5), 1280, 720, 3)) == 3
    assert distinct_colours(tile_chroma(frame_at(path, probe.duration - 0.5), 1280, 720, 2)) == 2


@pytest.mark.parametrize("mode", ["audio_only", "video_only"])
async def test_audio_only_and_video_only(lkapi, egress_api, publishers, room_name, mode):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 2)
    request = api.RoomCompositeEgressRequest(
        room_name=room_name, file_outputs=[api.EncodedFileOutput(filepath=f"{mode}.mp4")],
        advanced=api.EncodingOptions(width=640, height=360, framerate=15, video_bitrate=800, audio_frequency=44100),
        **{mode: True})
    request.file_outputs[0].disable_manifest = True
    final, seconds, _ = await record(egress_api, request, 3)
    assert final.status == S.EGRESS_COMPLETE, final.error
    assert not final.manifest_location and not Path(final.file_results[0].location + ".json").exists()
    probe = ffprobe(final.file_results[0].location)
    if mode == "audio_only":
        assert probe.stream("video") is None
        assert int(probe.stream("audio")["sample_rate"]) == 44100
    else:
        assert probe.stream("audio") is None
        v = probe.stream("video")
        assert (v["width"], v["height"]) == (640, 360) and 14.5 <= probe.video_fps <= 15.5
    assert abs(probe.duration - seconds) <= 0.5


async def test_ends_by_itself_when_everyone_leaves(lkapi, egress_api, publishers, room_name):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    pubs = publishers(room_name, 1)
    info = await egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
        room_name=room_name, file_outputs=[api.EncodedFileOutput(filepath="auto-end.mp4")]))
    await wait_status(egress_api, info.egress_id, lambda i: i.status == S.EGRESS_ACTIVE)
    await asyncio.sleep(2)
    pubs.stop()
    final, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in ENDED,
                                 timeout_s=EMPTY_TIMEOUT_S + 20)
    assert final.status == S.EGRESS_COMPLETE and final.details == "End reason: Source closed", final
    assert final.error == "" and final.error_code == 0
    assert ffprobe(final.file_results[0].location).duration > 2


async def test_ends_when_room_is_deleted(lkapi, egress_api, publishers, room_name):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    info = await egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
        room_name=room_name, file_outputs=[api.EncodedFileOutput(filepath="deleted-room.mp4")]))
    await wait_status(egress_api, info.egress_id, lambda i: i.status == S.EGRESS_ACTIVE)
    await asyncio.sleep(2)
    await lkapi.room.delete_room(api.DeleteRoomRequest(room=room_name))
    final, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in ENDED, timeout_s=20)
    assert final.status == S.EGRESS_COMPLETE, final.error
    assert final.details == "End reason: Source closed"
    assert ffprobe(final.file_results[0].location).duration > 1.5


async def test_killed_worker_leaves_a_playable_file(lkapi, egress_api, publishers, room_name, egress_server):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 2)
    info = await egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
        room_name=room_name, file_outputs=[api.EncodedFileOutput(filepath="crash.mp4")]))
    await wait_status(egress_api, info.egress_id, lambda i: i.status == S.EGRESS_ACTIVE)
    await asyncio.sleep(4)
    (worker,) = [p for p in psutil.Process(egress_server.pid).children() if info.egress_id in p.cmdline()]
    worker.send_signal(signal.SIGKILL)
    final, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in ENDED, timeout_s=20)
    assert final.status == S.EGRESS_FAILED and "exited unexpectedly" in final.error
    assert final.error_code == 500 and final.details == "End reason: Failure" and final.ended_at > 0
    (result,) = final.file_results
    probe = ffprobe(result.location)
    assert probe.stream("video")["codec_name"] == "h264"
    assert 2.0 <= probe.duration <= 5.0
    assert result.size == Path(result.location).stat().st_size and result.duration > 2e9


@pytest.mark.parametrize("limit_env", [
    {"PYEGRESS_MAX_DURATION_S": "3"},
    # LiveKit egress config.yaml's session limit, as a Go duration
    {"EGRESS_CONFIG_BODY": "session_limits:\n  file_output_max_duration: 3s\n  stream_output_max_duration: 1s\n"},
], ids=["setting", "livekit-config"])
async def test_max_duration_ends_with_limit_reached(lkapi, publishers, room_name, livekit, tmp_path, limit_env):
    from pyegress.devtools.pyegress_server import PyegressServer

    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    with PyegressServer(tmp_path / "limited", livekit.url, livekit.api_key, livekit.api_secret,
                        extra_env=limit_env) as server:
        async with api.LiveKitAPI(server.url, livekit.api_key, livekit.api_secret) as limited:
            info = await limited.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
                room_name=room_name, file_outputs=[api.EncodedFileOutput(filepath="limited.mp4")]))
            final, _ = await wait_status(limited, info.egress_id, lambda i: i.status in ENDED, timeout_s=30)
    assert final.status == S.EGRESS_LIMIT_REACHED, final
    # LiveKit's SetLimitReached: error and HTTP-style code, and the end reason in details
    assert (final.error, final.error_code, final.details) == ("Session limit reached", 413,
                                                              "End reason: Session limit reached")
    assert abs(ffprobe(final.file_results[0].location).duration - 3.0) <= 0.2


async def test_max_size_ends_with_limit_reached(lkapi, publishers, room_name, livekit, tmp_path):
    """LiveKit's ``session_limits.file_output_max_size``: once the outputs hold that many bytes the egress ends
    as a duration limit does, its file finished (livekit/egress ``controller.go``, ``onStorageLimitReached``)."""
    from pyegress.devtools.pyegress_server import PyegressServer

    limit = 600_000  # about 9 s of the generated publisher's picture
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    with PyegressServer(tmp_path / "sized", livekit.url, livekit.api_key, livekit.api_secret, extra_env={
            "EGRESS_CONFIG_BODY": f"session_limits:\n  file_output_max_size: {limit}\n"}) as server:
        async with api.LiveKitAPI(server.url, livekit.api_key, livekit.api_secret) as limited:
            info = await limited.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
                room_name=room_name, file_outputs=[api.EncodedFileOutput(filepath="sized.mp4")]))
            final, _ = await wait_status(limited, info.egress_id, lambda i: i.status in ENDED, timeout_s=60)
    assert final.status == S.EGRESS_LIMIT_REACHED, final
    assert (final.error, final.error_code, final.details) == ("Session limit reached", 413,
                                                              "End reason: Session limit reached")
    (result,) = final.file_results
    probe = ffprobe(result.location)
    assert probe.stream("video")["codec_name"] == "h264" and probe.duration > 1.0
    # looked at every second and the MP4 grows a fragment (about a second) at a time: ends within ~2 s past it
    assert limit <= result.size == Path(result.location).stat().st_size
    assert result.size - limit <= result.size / probe.duration * 2.5
