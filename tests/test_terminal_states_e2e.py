"""Every egress ends, and ends truthfully: its terminal status, ``error``, ``error_code`` and ``details``
as LiveKit sets them (livekit/protocol ``livekit/livekit_egress.go``), and results that say what the
files on disk hold — after a stop before start, a full disk, a manifest that cannot be written, a
livekit-server that is gone for good, and a ``pyegress serve`` killed and restarted.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import psutil
import pytest
from livekit import api

from conftest import publisher_factory, wait_status
from media_checks import counter_frames, media_span_s
from pyegress.devtools.probe import ffprobe
from pyegress.devtools.livekit_server import LiveKitServer
from pyegress.devtools.pyegress_server import PyegressServer
from test_webhooks_e2e import Receiver, wait_for_events

S = api.EgressStatus
ENDED = (S.EGRESS_COMPLETE, S.EGRESS_FAILED, S.EGRESS_ABORTED, S.EGRESS_LIMIT_REACHED)


@contextmanager
def tmpfs(path: Path, **options: str):
    """A tmpfs mounted at ``path`` (``size``, ``nr_inodes``): a disk that fills up for real."""
    path.mkdir(parents=True, exist_ok=True)
    opts = ",".join(f"{k}={v}" for k, v in options.items())
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@contextmanager
def serve(workdir: Path, livekit, **env: str):
    with PyegressServer(workdir, livekit.url, livekit.api_key, livekit.api_secret,
                        extra_env={"PYEGRESS_EMPTY_TIMEOUT_S": "3", "PYEGRESS_PROGRESS_INTERVAL_S": "1"} | env
                        ) as server:
        yield server


async def test_stop_before_active_is_aborted_without_files(lkapi, egress_api, publishers, room_name,
                                                           egress_server):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    ids = []
    for n in range(3):
        info = await egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
            room_name=room_name, file_outputs=[api.EncodedFileOutput(filepath=f"aborted/{room_name}-{n}.mp4")]))
        stopped = await egress_api.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
        assert stopped.status in (S.EGRESS_STARTING, S.EGRESS_ENDING), stopped
        ids.append(info.egress_id)
    for egress_id in ids:
        final, _ = await wait_status(egress_api, egress_id, lambda i: i.status in ENDED)
        assert final.status == S.EGRESS_ABORTED, final
        assert (final.error, final.error_code) == ("Stop called before pipeline could start", 412)
        assert final.details == "End reason: StopEgress API"
        assert not final.file_results and final.ended_at > 0
    assert not list((egress_server.recordings_dir / "aborted").glob(f"{room_name}-*")), "no empty files"


async def test_completed_egress_reports_its_end_reason(lkapi, egress_api, publishers, room_name):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    info = await egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
        room_name=room_name, file_outputs=[api.EncodedFileOutput(filepath=f"{room_name}/done.mp4")]))
    await wait_status(egress_api, info.egress_id, lambda i: i.status == S.EGRESS_ACTIVE)
    await asyncio.sleep(1.5)
    await egress_api.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
    final, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in ENDED)
    assert final.status == S.EGRESS_COMPLETE, final
    assert (final.error, final.error_code, final.details) == ("", 0, "End reason: StopEgress API")


async def test_full_disk_fails_with_the_reason_and_true_results(lkapi, publishers, room_name, livekit, tmp_path):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 2)
    with tmpfs(tmp_path / "srv" / "recordings", size="600k"), serve(tmp_path / "srv", livekit) as server:
        async with api.LiveKitAPI(server.url, livekit.api_key, livekit.api_secret) as lk:
            info = await lk.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
                room_name=room_name, file_outputs=[api.EncodedFileOutput(filepath="full.mp4")]))
            final, _ = await wait_status(lk, info.egress_id, lambda i: i.status in ENDED, timeout_s=60)
            assert final.status == S.EGRESS_FAILED, final
            assert "No space left on device" in final.error and final.error_code == 500, final.error
            assert "exited unexpectedly" not in final.error
            (result,) = final.file_results
            path = Path(result.location)
            assert result.size == path.stat().st_size
            # what the results claim is what a player finds in the file (a frame's tolerance)
            held = media_span_s(path)
            assert abs(result.duration / 1e9 - held) <= 0.1, (result.duration, held, ffprobe(str(path)).duration)
        log = (server.workdir / "logs" / f"{info.egress_id}.log").read_text()
        assert "Segmentation fault" not in log


async def test_unwritable_manifest_still_ends_the_egress(lkapi, publishers, room_name, livekit, tmp_path):
    """No free inode for the manifest: the egress must not stay EGRESS_ENDING."""
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    # the mount's root, its one file: no inode is left for <file>.json
    with tmpfs(tmp_path / "srv" / "recordings", size="50m", nr_inodes="2"), serve(tmp_path / "srv", livekit) as server:
        async with api.LiveKitAPI(server.url, livekit.api_key, livekit.api_secret) as lk:
            info = await lk.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
                room_name=room_name, file_outputs=[api.EncodedFileOutput(filepath="rec.mp4")]))
            await wait_status(lk, info.egress_id, lambda i: i.status == S.EGRESS_ACTIVE)
            await asyncio.sleep(2)
            stopped = await lk.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
            final, _ = await wait_status(lk, info.egress_id, lambda i: i.status in ENDED, timeout_s=30)
            assert final.status == stopped.status or final.status in ENDED
            assert final.status == S.EGRESS_COMPLETE, final
            assert not final.manifest_location
            assert ffprobe(final.file_results[0].location).duration > 1.5
            listed = await lk.egress.list_egress(api.ListEgressRequest(active=True))
            assert info.egress_id not in [i.egress_id for i in listed.items]


@asynccontextmanager
async def recording_on_own_livekit(tmp_path: Path, room: str, kinds: tuple[str, ...]):
    """A livekit-server of its own (so it can be killed), a publisher in ``room`` and a ``pyegress serve``
    recording it once per kind, all at once (``composite``: a room composite; ``track``: a track egress of
    its camera, written unchanged; ``composite-sdk``: a room composite received through the livekit SDK,
    which needs a service of its own, so it goes alone), 2 s into ACTIVE: yields
    ``(livekit, egress API client, {kind: info})``."""
    with LiveKitServer(log_path=tmp_path / "livekit.log") as lk_server, \
            publisher_factory(lk_server, tmp_path) as start_publishers:
        async with api.LiveKitAPI(lk_server.http_url, lk_server.api_key, lk_server.api_secret) as lk:
            await lk.room.create_room(api.CreateRoomRequest(name=room))
            start_publishers(room, 1)
            (p,) = (await lk.room.list_participants(api.ListParticipantsRequest(room=room))).participants
        receiver = {"PYEGRESS_COMPOSITE_RECEIVER": "sdk"} if "composite-sdk" in kinds else {}
        with serve(tmp_path / "srv", lk_server, **receiver) as server:
            async with api.LiveKitAPI(server.url, lk_server.api_key, lk_server.api_secret) as eg_api:
                infos = {}
                for kind in kinds:
                    if kind == "track":
                        video = next(t.sid for t in p.tracks if t.type == api.TrackType.VIDEO)
                        infos[kind] = await eg_api.egress.start_track_egress(api.TrackEgressRequest(
                            room_name=room, track_id=video, file=api.DirectFileOutput(filepath=f"{room}-{kind}")))
                    else:
                        infos[kind] = await eg_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
                            room_name=room, file_outputs=[api.EncodedFileOutput(filepath=f"{room}-{kind}.mp4")]))
                for info in infos.values():
                    await wait_status(eg_api, info.egress_id, lambda i: i.status == S.EGRESS_ACTIVE)
                await asyncio.sleep(2)
                yield lk_server, eg_api, infos


# The packet receiver's track and composite egresses share one killed server: the Go SDK tries to
# reconnect for about a minute before it gives up, and that minute is spent once.
KINDS = [("composite", "track"), ("composite-sdk",)]


@pytest.mark.parametrize("kinds", KINDS, ids="+".join)
async def test_lost_livekit_server_fails_the_egress(tmp_path, kinds):
    async with recording_on_own_livekit(tmp_path, "doomed", kinds) as (lk_server, eg_api, infos):
        lk_server._proc.send_signal(signal.SIGKILL)  # gone for good, no goodbye to anyone
        for kind, info in infos.items():
            final, _ = await wait_status(eg_api, info.egress_id, lambda i: i.status in ENDED, timeout_s=120)
            assert final.status == S.EGRESS_FAILED, (kind, final)
            assert final.error == "recording ended early: connection to room failed" and final.error_code == 503
            assert final.details.startswith("End reason: Failure")
            assert ffprobe(final.file_results[0].location).duration > 1.5, kind  # what was recorded is kept


async def test_restarted_service_ends_its_orphans_truthfully(lkapi, publishers, room_name, livekit, tmp_path):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    receiver = Receiver()
    try:
        env = {"PYEGRESS_WEBHOOK_URLS": receiver.url, "PYEGRESS_PROGRESS_INTERVAL_S": "30"}
        with serve(tmp_path / "srv", livekit, **env) as server:
            async with api.LiveKitAPI(server.url, livekit.api_key, livekit.api_secret) as lk:
                info = await lk.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
                    room_name=room_name, file_outputs=[api.EncodedFileOutput(filepath="orphan.mp4")]))
                await wait_status(lk, info.egress_id, lambda i: i.status == S.EGRESS_ACTIVE)
                await asyncio.sleep(3)
            workers = [p for p in psutil.Process(server.pid).children() if info.egress_id in p.cmdline()]
            server._proc.send_signal(signal.SIGKILL)
            server._proc.wait()
            for worker in workers:  # it notices its service is gone and finishes the file
                worker.wait(30)
            with serve(tmp_path / "srv", livekit, **env) as restarted:
                async with api.LiveKitAPI(restarted.url, livekit.api_key, livekit.api_secret) as lk:
                    final, _ = await wait_status(lk, info.egress_id, lambda i: i.status in ENDED, timeout_s=10)
                events = await wait_for_events(receiver, livekit, info.egress_id, "egress_ended")
    finally:
        receiver.close()
    assert final.status == S.EGRESS_FAILED and final.error_code == 500 and final.ended_at > 0, final
    assert "restarted" in final.error
    (result,) = final.file_results
    path = Path(result.location)
    # results re-read from the file, not the last progress report (30 s away, never sent)
    assert result.size == path.stat().st_size > 0
    assert abs(result.duration / 1e9 - ffprobe(str(path)).duration) <= 0.1 and result.duration > 2e9
    assert result.ended_at > result.started_at > 0
    manifest = json.loads(Path(str(path) + ".json").read_text())
    assert manifest["egress_id"] == info.egress_id and manifest["status"] == "EGRESS_FAILED"
    assert final.manifest_location == str(path) + ".json"
    assert [e.event for e in events].count("egress_ended") == 1
    assert events[-1].egress_info.status == S.EGRESS_FAILED


@pytest.mark.parametrize("kinds", KINDS, ids="+".join)
async def test_livekit_server_restart_is_a_visible_gap_not_an_end(tmp_path, kinds):
    async with recording_on_own_livekit(tmp_path, "bumpy", kinds) as (lk_server, eg_api, infos):
        lk_server._proc.send_signal(signal.SIGKILL)  # a crash, then a restart 1 s later
        lk_server._proc.wait()
        await asyncio.sleep(1)
        # the same signal port: the SDKs reconnect to it (the room is made anew on rejoin)
        with LiveKitServer(port=lk_server.port, log_path=tmp_path / "livekit-2.log"):
            await asyncio.sleep(12)
            finals = {}
            for kind, info in infos.items():
                still = (await eg_api.egress.list_egress(api.ListEgressRequest(egress_id=info.egress_id))).items[0]
                assert still.status == S.EGRESS_ACTIVE, (kind, still)
            for kind, info in infos.items():
                await eg_api.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
                finals[kind], _ = await wait_status(eg_api, info.egress_id, lambda i: i.status in ENDED)
    for kind, final in finals.items():
        assert final.status == S.EGRESS_COMPLETE, (kind, final)
        assert final.details.startswith("End reason: StopEgress API (room connection lost and regained 1x"), \
            (kind, final.details)
        assert ffprobe(final.file_results[0].location).duration > 12, kind
    if "track" in finals:  # the camera published again under a new SID is recorded on, in the same file
        frames = counter_frames(finals["track"].file_results[0].location)
        assert all(b[1] > a[1] for a, b in zip(frames, frames[1:]))
        assert frames[-1][0] > 12 and sum(1 for t, _ in frames if t > 5) > 200
