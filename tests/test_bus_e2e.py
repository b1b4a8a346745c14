"""pyegress as an egress worker of a real livekit-server over Redis/psrpc.

livekit-server (built from its Go module, ``--redis-host``) serves LiveKit's
own Egress API and autoegress; Debian redis-server carries psrpc; pyegress
workers claim the jobs, record, and report back over IOInfo, so ListEgress and
the egress webhooks come from livekit-server itself.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from livekit import api

from pyegress.devtools.livekit_server import LiveKitServer
from pyegress.devtools.probe import ffprobe
from pyegress.devtools.pyegress_server import PyegressWorker
from pyegress.devtools.redis_server import RedisServer

from conftest import Publishers
from test_webhooks_e2e import Receiver

S = api.EgressStatus


@pytest.fixture(scope="module")
def redis_server():
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def hooks():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def lk_redis(redis_server, hooks, tmp_path_factory):
    """livekit-server with Redis: its Egress API hands jobs to workers, its webhooks go to ``hooks``."""
    work = tmp_path_factory.mktemp("livekit-redis")
    with LiveKitServer(log_path=work / "livekit-server.log", redis_host=redis_server.address,
                       webhook_urls=[hooks.url]) as server:
        yield server


def _worker(lk, redis_server, workdir: Path, config: str = "") -> PyegressWorker:
    return PyegressWorker(workdir, lk.url, lk.api_key, lk.api_secret, redis_server.address, config=config,
                          extra_env={"PYEGRESS_EMPTY_TIMEOUT_S": "3", "PYEGRESS_PROGRESS_INTERVAL_S": "1"})


@pytest.fixture(scope="module")
def workers(lk_redis, redis_server, tmp_path_factory):
    """Two pyegress workers on the same Redis."""
    started = [_worker(lk_redis, redis_server, tmp_path_factory.mktemp(f"worker{i}")).start() for i in range(2)]
    yield started
    for w in started:
        w.stop()


@pytest.fixture
async def lk(lk_redis):
    """LiveKit's own API client, pointed at livekit-server (not at pyegress)."""
    async with api.LiveKitAPI(lk_redis.http_url, lk_redis.api_key, lk_redis.api_secret) as client:
        yield client


@pytest.fixture
def room_publishers(lk_redis, tmp_path):
    started: list[Publishers] = []

    def start(room: str, count: int = 1, **kw) -> Publishers:
        p = Publishers(lk_redis, room, count, tmp_path / f"publishers-{len(started)}.log", **kw)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


async def wait_info(lk, egress_id: str, done, timeout_s: float = 60.0) -> api.EgressInfo:
    """Poll livekit-server's ListEgress (its Redis store, fed by IOInfo) until ``done(info)``."""
    deadline = time.monotonic() + timeout_s
    items = []
    while time.monotonic() < deadline:
        items = (await lk.egress.list_egress(api.ListEgressRequest(egress_id=egress_id))).items
        if items and done(items[0]):
            return items[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"egress {egress_id} not in the expected state after {timeout_s} s: {items}")


def find_file(workers, name: str) -> Path:
    """The recording ``name`` (relative to a recordings dir) in whichever worker made it."""
    for w in workers:
        if (w.recordings_dir / name).exists():
            return w.recordings_dir / name
    raise AssertionError(f"{name} is in no worker's recordings dir")


def owner(workers, egress_id: str) -> PyegressWorker:
    """The worker whose log shows it recording ``egress_id``."""
    for w in workers:
        if (w.workdir / "logs" / f"{egress_id}.log").exists():
            return w
    raise AssertionError(f"no worker ran {egress_id}")


async def test_livekit_api_start_list_stop_through_worker(lk, workers, room_publishers, room_name, hooks,
                                                          lk_redis):
    room_publishers(room_name, 2)
    info = await lk.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
        room_name=room_name, layout="grid",
        file_outputs=[api.EncodedFileOutput(filepath=f"bus/{room_name}.mp4")]))
    assert info.egress_id.startswith("EG_") and info.room_name == room_name
    active = await wait_info(lk, info.egress_id, lambda i: i.status == S.EGRESS_ACTIVE)
    assert active.started_at > 0

    # UpdateLayout goes through livekit-server as recorder metadata, not as an RPC
    await lk.egress.update_layout(api.UpdateLayoutRequest(egress_id=info.egress_id, layout="speaker"))
    await asyncio.sleep(3)
    stopped = await lk.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
    assert stopped.status in (S.EGRESS_ACTIVE, S.EGRESS_ENDING)
    done = await wait_info(lk, info.egress_id, lambda i: i.status == S.EGRESS_COMPLETE)
    assert done.ended_at > done.started_at
    result = done.file_results[0]
    path = find_file(workers, f"bus/{room_name}.mp4")
    assert result.size == path.stat().st_size
    probe = ffprobe(path)
    assert probe.stream("video")["codec_name"] == "h264" and probe.stream("audio")["codec_name"] == "aac"
    assert abs(probe.duration - result.duration / 1e9) < 0.5
    assert probe.duration > 2.5

    worker_log = (owner(workers, info.egress_id).workdir / "logs" / f"{info.egress_id}.log").read_text()
    assert "layout speaker" in worker_log

    # livekit-server's own webhooks, signed with its key: started, updated (active), ended
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        events = [e for e in hooks.events(lk_redis) if e.egress_info.egress_id == info.egress_id]
        if any(e.event == "egress_ended" for e in events):
            break
        await asyncio.sleep(0.2)
    names = [e.event for e in events]
    assert names[0] == "egress_started" and "egress_updated" in names and names[-1] == "egress_ended"
    assert events[-1].egress_info.status == S.EGRESS_COMPLETE
