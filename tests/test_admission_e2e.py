"""Admission and start under load (issue 12, items 13-14), against a real livekit-server and ``pyegress serve``.

Each test runs its own ``pyegress serve`` with a small CPU budget or a worker pool (settings via env), so
the shared session server's egresses are never refused.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
from livekit import api

from conftest import publisher_factory, wait_status
from pyegress.service.admission import machine_cores
from pyegress.devtools.livekit_server import LiveKitServer
from pyegress.devtools.probe import ffprobe
from pyegress.devtools.pyegress_server import PyegressServer
from support.redis_server import RedisServer
from pyegress.handler.pooled import IDLE_LABEL

S = api.EgressStatus
ENDED = (S.EGRESS_COMPLETE, S.EGRESS_FAILED, S.EGRESS_ABORTED, S.EGRESS_LIMIT_REACHED)
#: a composite reserves 35 % of the machine: with max_cpu_utilization 0.8, two fit (0.7) and a third does not
COMPOSITE_SHARE = 0.35


@contextmanager
def serve(workdir: Path, livekit, **env: str):
    server = PyegressServer(workdir, livekit.url, livekit.api_key, livekit.api_secret,
                            extra_env={"PYEGRESS_PROGRESS_INTERVAL_S": "1", **env}).start()
    try:
        yield server
    finally:
        server.stop()


def pooled_children(server: PyegressServer) -> list[psutil.Process]:
    """The server's worker processes still waiting in its pool."""
    return [p for p in psutil.Process(server.pid).children() if IDLE_LABEL in p.cmdline()]


def wait_until(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while not (result := predicate()):
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.1)
    return result


def composite(room_name: str, name: str) -> api.RoomCompositeEgressRequest:
    return api.RoomCompositeEgressRequest(room_name=room_name, layout="grid",
                                          file_outputs=[api.EncodedFileOutput(filepath=f"{name}.mp4")])


async def start_or_error(lk: api.LiveKitAPI, request) -> api.EgressInfo | api.TwirpError:
    try:
        return await lk.egress.start_room_composite_egress(request)
    except api.TwirpError as e:
        return e


async def test_burst_beyond_budget_is_refused_and_admitted_ones_go_active(livekit, lkapi, publishers, room_name,
                                                                          tmp_path):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 2)
    cost = f"{machine_cores() * COMPOSITE_SHARE:.3f}"
    with serve(tmp_path / "srv", livekit, PYEGRESS_CPU_COST__ROOM_COMPOSITE_CPU_COST=cost,
               PYEGRESS_CPU_COST__MAX_CPU_UTILIZATION="0.8") as server:
        async with api.LiveKitAPI(server.url, livekit.api_key, livekit.api_secret) as lk:
            t0 = time.monotonic()
            results = await asyncio.gather(*(start_or_error(lk, composite(room_name, f"burst-{i}"))
                                             for i in range(8)))
            admitted = [r for r in results if isinstance(r, api.EgressInfo)]
            refused = [r for r in results if isinstance(r, api.TwirpError)]
            assert len(admitted) == 2 and len(refused) == 6, results
            for e in refused:  # at once, with Twirp's code for it, naming the reason
                assert e.code == "resource_exhausted" and e.status == 429 and "CPU" in e.message, e
            assert time.monotonic() - t0 < 5
            for info in admitted:
                active, _ = await wait_status(lk, info.egress_id, lambda i: i.status in (S.EGRESS_ACTIVE, *ENDED),
                                              timeout_s=10)
                assert active.status == S.EGRESS_ACTIVE, active.error
            # a refused start leaves nothing behind
            listed = (await lk.egress.list_egress(api.ListEgressRequest(room_name=room_name))).items
            assert sorted(i.egress_id for i in listed) == sorted(i.egress_id for i in admitted)

            # the REST dialects' starts go through the same budget
            token = api.AccessToken(livekit.api_key, livekit.api_secret).with_identity("alice").with_grants(
                api.VideoGrants(room_record=True)).to_jwt()
            async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as http:
                rest = await http.post("/api/video/recordings", json={"roomName": room_name})
            assert rest.status_code == 429, rest.text

            for info in admitted:
                await lk.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
            for info in admitted:
                final, _ = await wait_status(lk, info.egress_id, lambda i: i.status in ENDED)
                assert final.status == S.EGRESS_COMPLETE, final.error
            # ended egresses give their cores back
            again = await lk.egress.start_room_composite_egress(composite(room_name, "again"))
            await wait_status(lk, again.egress_id, lambda i: i.status == S.EGRESS_ACTIVE, timeout_s=10)
            await lk.egress.stop_egress(api.StopEgressRequest(egress_id=again.egress_id))
            await wait_status(lk, again.egress_id, lambda i: i.status in ENDED)


async def test_pooled_worker_records_a_playable_file(livekit, lkapi, publishers, room_name, tmp_path):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 2)
    with serve(tmp_path / "srv", livekit, PYEGRESS_HANDLER_POOL_SIZE="1") as server:
        (pooled,) = wait_until(lambda: pooled_children(server), 20, "a pooled worker")
        async with api.LiveKitAPI(server.url, livekit.api_key, livekit.api_secret) as lk:
            info = await lk.egress.start_room_composite_egress(composite(room_name, "pooled"))
            await wait_status(lk, info.egress_id, lambda i: i.status == S.EGRESS_ACTIVE, timeout_s=10)
            # the pooled process records it: labelled with the egress, logging to the egress's own log
            assert info.egress_id in pooled.cmdline()
            log_path = server.workdir / "logs" / f"{info.egress_id}.log"
            assert os.readlink(f"/proc/{pooled.pid}/fd/2") == str(log_path)
            await asyncio.sleep(3)
            await lk.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
            final, _ = await wait_status(lk, info.egress_id, lambda i: i.status in ENDED)
        assert final.status == S.EGRESS_COMPLETE, final.error
        probe = ffprobe(final.file_results[0].location)
        assert probe.stream("video") and probe.stream("audio") and probe.duration > 2
        assert "pyegress" in log_path.read_text()  # the worker's log lines went to the egress's file
        # the pool refills with a new process
        (refill,) = wait_until(lambda: pooled_children(server), 20, "the pool's refill")
        assert refill.pid != pooled.pid


async def test_sigkill_of_serve_leaves_no_pooled_workers(livekit, lkapi, publishers, room_name, tmp_path):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    with serve(tmp_path / "srv", livekit, PYEGRESS_HANDLER_POOL_SIZE="2") as server:
        wait_until(lambda: len(pooled_children(server)) == 2, 30, "two pooled workers")
        async with api.LiveKitAPI(server.url, livekit.api_key, livekit.api_secret) as lk:
            info = await lk.egress.start_room_composite_egress(composite(room_name, "survivor"))
            await wait_status(lk, info.egress_id, lambda i: i.status == S.EGRESS_ACTIVE, timeout_s=10)
        (recorder,) = [p for p in psutil.Process(server.pid).children() if info.egress_id in p.cmdline()]
        assert pooled_children(server)  # the one left, and the refill if it has started
        pool_arg = f"--pool={server.pid}"
        server._proc.send_signal(signal.SIGKILL)
        server._proc.wait()
        # every process of its pool dies with it, even one still importing
        wait_until(lambda: not [p for p in psutil.process_iter(["cmdline"]) if pool_arg in (p.info["cmdline"] or [])],
                   5, "the pooled workers to exit")
        # the worker that had an egress is no pool process any more: it finishes its file and exits by itself
        recorder.wait(30)
    probe = ffprobe(tmp_path / "srv" / "recordings" / "survivor.mp4")
    assert probe.stream("video") and probe.duration > 0


async def test_livekit_server_jobs_and_own_starts_share_one_budget(room_name, tmp_path):
    """``pyegress serve`` with Redis records livekit-server's jobs and its own API's starts: one budget for both."""
    cost = f"{machine_cores() * 0.5:.3f}"  # one composite at a time: 0.8 x cores - 0.5 x cores < 0.5 x cores
    with RedisServer() as redis_server, \
            LiveKitServer(log_path=tmp_path / "livekit-server.log", redis_host=redis_server.address) as lk, \
            publisher_factory(lk, tmp_path) as publishers, \
            serve(tmp_path / "srv", lk, PYEGRESS_REDIS__ADDRESS=redis_server.address,
                  PYEGRESS_CPU_COST__ROOM_COMPOSITE_CPU_COST=cost) as server:
        async with api.LiveKitAPI(lk.http_url, lk.api_key, lk.api_secret) as via_livekit, \
                api.LiveKitAPI(server.url, lk.api_key, lk.api_secret) as own:
            await via_livekit.room.create_room(api.CreateRoomRequest(name=room_name))
            publishers(room_name, 1)
            job = await via_livekit.egress.start_room_composite_egress(composite(room_name, "from-livekit"))
            await wait_status(via_livekit, job.egress_id, lambda i: i.status == S.EGRESS_ACTIVE)
            # livekit-server's job holds the budget, so the service's own start is refused
            refused = await start_or_error(own, composite(room_name, "own"))
            assert isinstance(refused, api.TwirpError) and refused.code == "resource_exhausted", refused
            await via_livekit.egress.stop_egress(api.StopEgressRequest(egress_id=job.egress_id))
            await wait_status(via_livekit, job.egress_id, lambda i: i.status in ENDED)
            # and once it has ended, the cores are the service's again
            mine = await wait_admitted(own, composite(room_name, "own"))
            await wait_status(own, mine.egress_id, lambda i: i.status == S.EGRESS_ACTIVE, timeout_s=10)
            await own.egress.stop_egress(api.StopEgressRequest(egress_id=mine.egress_id))
            await wait_status(own, mine.egress_id, lambda i: i.status in ENDED)


async def wait_admitted(lk: api.LiveKitAPI, request, timeout_s: float = 10.0) -> api.EgressInfo:
    """Start ``request``, retrying while it is refused for CPU (an ended egress frees its cores when its
    worker process has exited, just after its end is listed)."""
    deadline = time.monotonic() + timeout_s
    while isinstance(result := await start_or_error(lk, request), api.TwirpError):
        assert result.code == "resource_exhausted" and time.monotonic() < deadline, result
        await asyncio.sleep(0.2)
    return result
