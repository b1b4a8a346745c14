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
from support.redis_server import RedisServer

from conftest import publisher_factory
from test_web_egress_e2e import pages  # noqa: F401 (fixture: the test page server)
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
    """Two pyegress workers on the same Redis (their config in LiveKit egress config.yaml keys)."""
    # a composite reserves 1 core here, so one fills a worker's budget (2 cores x 0.8)
    started = [_worker(lk_redis, redis_server, tmp_path_factory.mktemp(f"worker{i}"),
                       config="cpu_cost:\n  room_composite_cpu_cost: 1.0\n").start() for i in range(2)]
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
    """Generated publishers on the Redis-backed livekit-server."""
    with publisher_factory(lk_redis, tmp_path) as start:
        yield start


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


async def _start_file(lk, room: str, name: str) -> api.EgressInfo:
    info = await lk.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
        room_name=room, file_outputs=[api.EncodedFileOutput(filepath=name)]))
    await wait_info(lk, info.egress_id, lambda i: i.status == S.EGRESS_ACTIVE)
    return info


async def test_serve_with_redis_takes_jobs_from_livekit_server(lk, lk_redis, redis_server, room_publishers,
                                                               room_name, tmp_path):
    """``pyegress serve`` with ``redis`` configured is a worker too (runs first: no other worker yet)."""
    from pyegress.devtools.pyegress_server import PyegressServer

    room_publishers(room_name, 1)
    with PyegressServer(tmp_path / "serve", lk_redis.url, lk_redis.api_key, lk_redis.api_secret,
                        extra_env={"EGRESS_CONFIG_BODY": f"redis:\n  address: {redis_server.address}\n"}) as serve:
        info = await _start_file(lk, room_name, f"serve/{room_name}.mp4")
        await asyncio.sleep(2)
        await lk.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
        done = await wait_info(lk, info.egress_id, lambda i: i.status == S.EGRESS_COMPLETE)
        assert ffprobe(serve.recordings_dir / f"serve/{room_name}.mp4").duration > 1.5
        # its own API lists the egress too
        async with api.LiveKitAPI(serve.url, lk_redis.api_key, lk_redis.api_secret) as own:
            listed = (await own.egress.list_egress(api.ListEgressRequest(egress_id=info.egress_id))).items
        assert listed[0].status == S.EGRESS_COMPLETE and listed[0].file_results[0].size == done.file_results[0].size


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


async def test_autoegress_records_composite_and_every_track(lk, workers, room_publishers, room_name):
    """CreateRoom with ``egress.room`` (HLS) and ``egress.tracks``: no further call records everything."""
    await lk.room.create_room(api.CreateRoomRequest(name=room_name, empty_timeout=30, egress=api.RoomEgress(
        room=api.RoomCompositeEgressRequest(segment_outputs=[api.SegmentedFileOutput(
            filename_prefix=f"auto/{room_name}/seg", playlist_name=f"auto/{room_name}/index.m3u8")]),
        tracks=api.AutoTrackEgress(filepath="tracks/{room_name}-{publisher_identity}-{time}"))))
    pubs = room_publishers(room_name, 1)
    # one composite + one egress per published track (audio and video)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        items = (await lk.egress.list_egress(api.ListEgressRequest(room_name=room_name))).items
        if len(items) == 3 and all(i.status == S.EGRESS_ACTIVE for i in items):
            break
        await asyncio.sleep(0.2)
    kinds = sorted(i.WhichOneof("request") for i in items)
    assert kinds == ["room_composite", "track", "track"], items
    assert all(i.status == S.EGRESS_ACTIVE for i in items), items
    await asyncio.sleep(3)
    pubs.stop()  # tracks unpublished: track egresses end; then the room goes
    await lk.room.delete_room(api.DeleteRoomRequest(room=room_name))
    ended = [await wait_info(lk, i.egress_id, lambda x: x.status not in (S.EGRESS_STARTING, S.EGRESS_ACTIVE,
                                                                         S.EGRESS_ENDING)) for i in items]
    assert all(i.status == S.EGRESS_COMPLETE for i in ended), [(i.egress_id, i.status, i.error) for i in ended]

    composite = next(i for i in ended if i.WhichOneof("request") == "room_composite")
    playlist = find_file(workers, f"auto/{room_name}/index.m3u8")
    assert composite.segment_results[0].segment_count >= 1
    assert "#EXT-X-ENDLIST" in playlist.read_text()
    for track in (i for i in ended if i.WhichOneof("request") == "track"):
        name = track.file_results[0].filename
        assert name.startswith(f"tracks/{room_name}-pub-0-") and track.track.track_id in name
        probe = ffprobe(find_file(workers, name))
        kind = "audio" if probe.stream("video") is None else "video"
        assert probe.duration > 2.0, (name, kind, probe.summary())


async def test_jobs_spread_a_killed_worker_fails_only_its_egress_and_drain_finishes(
        lk, workers, room_publishers, room_name):
    room_publishers(room_name, 1)
    a = await _start_file(lk, room_name, f"spread/{room_name}-a.mp4")
    b = await _start_file(lk, room_name, f"spread/{room_name}-b.mp4")
    wa, wb = owner(workers, a.egress_id), owner(workers, b.egress_id)
    # one composite fills a worker's CPU budget here (1 core of 2 x 0.8): the second went elsewhere
    assert wa is not wb
    assert f"declining {b.egress_id}" in wa.log_path.read_text()

    await asyncio.sleep(2)
    wa.kill()  # SIGKILL the worker service mid-recording
    failed = await wait_info(lk, a.egress_id, lambda i: i.status not in (S.EGRESS_ACTIVE, S.EGRESS_ENDING), 40)
    assert failed.status == S.EGRESS_FAILED and "worker service stopped" in failed.error
    kept = ffprobe(find_file(workers, f"spread/{room_name}-a.mp4"))  # finished by its recording process
    assert kept.duration > 1.5 and kept.stream("video")["codec_name"] == "h264"
    assert (await wait_info(lk, b.egress_id, lambda i: True)).status == S.EGRESS_ACTIVE

    # a restarted worker does not overwrite what its orphaned recording reported
    wa.start()
    await asyncio.sleep(1)
    assert (await wait_info(lk, a.egress_id, lambda i: True)).error == failed.error

    # SIGTERM drains: the running egress is finished and reported before the worker exits
    wb.stop()
    done = await wait_info(lk, b.egress_id, lambda i: i.status not in (S.EGRESS_ACTIVE, S.EGRESS_ENDING), 40)
    assert done.status == S.EGRESS_COMPLETE, done
    assert abs(ffprobe(find_file(workers, f"spread/{room_name}-b.mp4")).duration
               - done.file_results[0].duration / 1e9) < 0.5
    wb.start()


async def test_worker_over_budget_never_claims(lk, lk_redis, redis_server, workers, room_publishers, room_name,
                                               tmp_path):
    greedy = _worker(lk_redis, redis_server, tmp_path / "greedy",
                     config="cpu_cost:\n  room_composite_cpu_cost: 64\n").start()
    try:
        room_publishers(room_name, 1)
        info = await _start_file(lk, room_name, f"budget/{room_name}.mp4")
        assert owner(workers, info.egress_id) in workers
        assert f"declining {info.egress_id}" in greedy.log_path.read_text()
        await lk.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
        assert (await wait_info(lk, info.egress_id, lambda i: i.status == S.EGRESS_COMPLETE)).file_results
    finally:
        greedy.stop()


async def test_update_stream_and_list_active_over_psrpc(lk, workers, room_publishers, room_name, redis_server,
                                                        tmp_path):
    """UpdateStream goes to the egress's worker (EgressHandler topic); ListActiveEgress (multi) answers from
    every worker."""
    from pyegress.psrpc.pb import psrpc_internal_pb2 as pb
    from pyegress.psrpc.pb import rpc_egress_pb2 as rpc
    from pyegress.psrpc.rpc import RedisBus, channel, new_id, unwrap
    from pyegress.config import RedisConfig
    from support.rtmp_server import RtmpServer

    room_publishers(room_name, 1)
    with RtmpServer(tmp_path / "rtmp") as rtmp:
        info = await lk.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
            room_name=room_name, stream_outputs=[api.StreamOutput(urls=[rtmp.url("first")])]))
        await wait_info(lk, info.egress_id, lambda i: i.status == S.EGRESS_ACTIVE)
        updated = await lk.egress.update_stream(api.UpdateStreamRequest(
            egress_id=info.egress_id, add_output_urls=[rtmp.url("second")]))
        assert [r.url.rsplit("/", 1)[-1] for r in updated.stream_results] == ["****", "****"]

        bus = RedisBus(RedisConfig(address=redis_server.address))
        await bus.start()
        client_id, answers = new_id("CLI_"), []

        async def on_response(payload: bytes) -> None:
            answers.append(rpc.ListActiveEgressResponse.FromString(unwrap(payload, pb.Response).raw_response))

        await bus.subscribe(channel("EgressInternal", client_id, "RES"), on_response)
        now = time.time_ns()
        await bus.publish("EgressInternal|ListActiveEgress|REQ", pb.Request(
            request_id=new_id("REQ_"), client_id=client_id, sent_at=now, expiry=now + 2_000_000_000, multi=True,
            raw_request=rpc.ListActiveEgressRequest().SerializeToString()))
        await asyncio.sleep(1)
        await bus.close()
        assert len(answers) == len(workers)  # one answer per worker, no claim round
        assert sorted(e for a in answers for e in a.egress_ids) == [info.egress_id]

        await asyncio.sleep(3)
        await lk.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
        done = await wait_info(lk, info.egress_id, lambda i: i.status == S.EGRESS_COMPLETE)
        assert len(done.stream_results) == 2
        await asyncio.sleep(1)  # nginx finishes its recordings
        for key in ("first", "second"):
            (received,) = rtmp.recordings(key)
            assert ffprobe(received).stream("video")["codec_name"] == "h264"


async def test_livekit_server_web_egress_runs_on_a_worker(lk, workers, pages):  # noqa: F811 (the fixture)
    """livekit-server's StartWebEgress reaches a pyegress worker, which records the page in Chromium."""
    from test_web_egress_e2e import TONE_HZ

    info = await lk.egress.start_web_egress(api.WebEgressRequest(
        url=f"{pages.url}/page.html?tone={TONE_HZ}", advanced=api.EncodingOptions(width=640, height=360),
        file_outputs=[api.EncodedFileOutput(filepath="bus/web.mp4")]))
    await wait_info(lk, info.egress_id, lambda i: i.status == S.EGRESS_ACTIVE)
    await asyncio.sleep(3)
    await lk.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
    done = await wait_info(lk, info.egress_id, lambda i: i.status == S.EGRESS_COMPLETE)
    assert done.source_type == api.EgressSourceType.EGRESS_SOURCE_TYPE_WEB
    probe = ffprobe(find_file(workers, "bus/web.mp4"))
    assert (probe.stream("video")["width"], probe.stream("audio")["codec_name"]) == (640, "aac")
    assert abs(probe.duration - done.file_results[0].duration / 1e9) < 0.5
