"""Prometheus metrics of real recordings (docs/metrics.md): ``pyegress serve`` and ``pyegress worker`` with
``prometheus_port`` record a real room of generated publishers, and their endpoint is scraped while the egress
runs (one active egress, its handler's CPU and memory, each track's frames received) and after it ended (no
egress left, the end counted, its series gone), with an upload to a real S3 server, a refused start and a
webhook URL that never answers."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
import pytest
from livekit import api
from prometheus_client.parser import text_string_to_metric_families

from conftest import wait_status
from pyegress.devtools.process import free_port
from pyegress.devtools.pyegress_server import PyegressServer, PyegressWorker
from support.s3_server import S3Server
from test_bus_e2e import hooks, lk, lk_redis, redis_server, room_publishers, wait_info  # noqa: F401 (fixtures)
from test_storage_e2e import upload_to

S = api.EgressStatus
CORES = len(os.sched_getaffinity(0))


class Scrape:
    """One scrape of a metrics endpoint: ``get(name, **labels)`` sums the samples whose labels include those."""

    def __init__(self, url: str) -> None:
        text = httpx.get(url, timeout=5).text
        self.samples = [s for f in text_string_to_metric_families(text) for s in f.samples]

    def series(self, name: str, **labels) -> list:
        return [s for s in self.samples if s.name == name and labels.items() <= s.labels.items()]

    def get(self, name: str, **labels) -> float:
        return sum(s.value for s in self.series(name, **labels))

    def of_egress(self, egress_id: str) -> list:
        return [s for s in self.samples if s.labels.get("egress_id") == egress_id]


async def scrape_until(url: str, done, timeout_s: float = 30.0) -> Scrape:
    """Scrape ``url`` until ``done(scrape)``; the last scrape is returned either way (its asserts say why)."""
    deadline = time.monotonic() + timeout_s
    while True:
        scrape = Scrape(url)
        if done(scrape) or time.monotonic() > deadline:
            return scrape
        await asyncio.sleep(0.5)


def receiving(scrape: Scrape, egress_id: str, tracks: int) -> bool:
    """Whether ``tracks`` tracks of the egress have received 2 s of frames (60 of 30 fps video), so that the
    last report's interval was one of receiving (a track's first also holds the wait for its first frame)."""
    frames = scrape.series("pyegress_track_received_frames_total", egress_id=egress_id)
    return len(frames) == tracks and all(s.value >= 60 for s in frames)


def check_running(scrape: Scrape, egress_id: str, kind: str, running_s: float) -> None:
    """What a scrape of an active egress with 2 publishers (a video and an audio track each) shows."""
    assert scrape.get("pyegress_egresses", type=kind, status="EGRESS_ACTIVE") == 1
    assert scrape.get("pyegress_egresses", status="EGRESS_ACTIVE") == 1
    cpu = scrape.get("pyegress_egress_cpu_seconds_total", egress_id=egress_id, type=kind)
    assert 0.2 < cpu < running_s * CORES, cpu  # it decodes and encodes: it works, and within the machine
    memory = scrape.get("pyegress_egress_memory_bytes", egress_id=egress_id, type=kind)
    assert 50e6 < memory < 4e9, memory  # a Python process with PyAV and numpy, plus its receiver
    for track_kind, low, high in (("video", 5, 35), ("audio", 10, 110)):
        rates = scrape.series("pyegress_track_frame_rate_hertz", egress_id=egress_id, kind=track_kind)
        assert len(rates) == 2 and all(low <= s.value <= high for s in rates), rates
        frames = scrape.series("pyegress_track_received_frames_total", egress_id=egress_id, kind=track_kind)
        assert len(frames) == 2 and all(s.value >= low for s in frames), frames
    assert len(scrape.series("pyegress_track_freezes_total", egress_id=egress_id, kind="video")) == 2
    assert not scrape.series("pyegress_track_freezes_total", egress_id=egress_id, kind="audio")


def check_ended(before: Scrape, after: Scrape, egress_id: str, kind: str) -> None:
    assert after.get("pyegress_egresses", status="EGRESS_ACTIVE") == 0
    assert after.get("pyegress_egresses", status="EGRESS_ENDING") == 0
    assert after.of_egress(egress_id) == []  # every series of the egress went with it
    for name, labels in (("pyegress_egress_starts_total", {}), ("pyegress_egress_ends_total",
                                                                {"status": "EGRESS_COMPLETE"})):
        assert after.get(name, type=kind, **labels) == before.get(name, type=kind, **labels) + 1, name
    assert after.get("pyegress_egress_failures_total") == before.get("pyegress_egress_failures_total")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with S3Server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture(scope="module")
def metered(livekit, tmp_path_factory):
    """``pyegress serve`` with metrics on ``metered.metrics_url``; its webhooks go to a port nobody listens on,
    and a track egress costs more cores than the machine has, so one is refused while anything runs."""
    metrics_port = free_port()
    with PyegressServer(tmp_path_factory.mktemp("metered"), livekit.url, livekit.api_key, livekit.api_secret,
                        extra_env={"PYEGRESS_PROMETHEUS_PORT": str(metrics_port), "PYEGRESS_PROGRESS_INTERVAL_S": "1",
                                   "PYEGRESS_EMPTY_TIMEOUT_S": "3", "PYEGRESS_HANDLER_POOL_SIZE": "1",
                                   "PYEGRESS_WEBHOOK_URLS": f"http://127.0.0.1:{free_port()}/hooks",
                                   "PYEGRESS_CPU_COST__TRACK_CPU_COST": "64"}) as server:
        server.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        yield server


async def test_serve_metrics_during_and_after_a_recording(metered, livekit, lkapi, publishers, room_name, s3):
    async with api.LiveKitAPI(metered.url, livekit.api_key, livekit.api_secret) as egress_api:
        await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
        publishers(room_name, 2)
        before = Scrape(metered.metrics_url)
        assert before.get("pyegress_egresses") == 0 and before.series("pyegress_egress_starts_total")
        info = await egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
            room_name=room_name, file_outputs=[api.EncodedFileOutput(filepath="{room_name}/metered.mp4",
                                                                     s3=upload_to(s3.endpoint))]))
        started = time.monotonic()
        egress_id = info.egress_id
        await wait_status(egress_api, egress_id, lambda i: i.status == S.EGRESS_ACTIVE)
        during = await scrape_until(metered.metrics_url, lambda s: receiving(s, egress_id, 4))
        check_running(during, egress_id, "room_composite", time.monotonic() - started)
        await asyncio.sleep(2)
        later = Scrape(metered.metrics_url)
        cpu = "pyegress_egress_cpu_seconds_total"
        assert later.get(cpu, egress_id=egress_id) > during.get(cpu, egress_id=egress_id)
        assert later.get("pyegress_track_received_frames_total", egress_id=egress_id) > \
            during.get("pyegress_track_received_frames_total", egress_id=egress_id)

        # a start that does not fit the CPU budget is refused, and counted
        with pytest.raises(api.TwirpError) as refused:
            await egress_api.egress.start_track_egress(api.TrackEgressRequest(
                room_name=room_name, track_id="TR_any", file=api.DirectFileOutput(filepath="x.ogg")))
        assert refused.value.code == "resource_exhausted"

        await egress_api.egress.stop_egress(api.StopEgressRequest(egress_id=egress_id))
        final, _ = await wait_status(egress_api, egress_id, lambda i: i.status == S.EGRESS_COMPLETE)
        after = Scrape(metered.metrics_url)
    check_ended(before, after, egress_id, "room_composite")
    assert after.get("pyegress_admission_refusals_total", type="track", via="api") == \
        before.get("pyegress_admission_refusals_total", type="track", via="api") + 1
    (result,) = final.file_results
    assert result.location.startswith(s3.endpoint)
    uploaded = after.get("pyegress_upload_bytes_total", storage="s3") - before.get("pyegress_upload_bytes_total",
                                                                                  storage="s3")
    assert result.size <= uploaded <= 2 * result.size, (uploaded, result.size)  # streamed, maybe sent again
    assert after.get("pyegress_upload_failures_total") == 0
    # the webhooks of its start, activity and end are waiting in the outbox, retried
    assert after.get("pyegress_webhook_delivery_failures_total") >= 1
    assert after.get("pyegress_webhook_outbox_deliveries", state="pending") >= 1
    assert after.get("pyegress_webhook_deliveries_total") == 0


async def test_worker_metrics_with_the_sdk_receiver(lk, lk_redis, redis_server, room_publishers,  # noqa: F811
                                                    room_name, tmp_path):
    """``pyegress worker`` serves them too; its egress receives through the livekit SDK (decoded frames)."""
    metrics_port = free_port()
    worker = PyegressWorker(tmp_path / "worker", lk_redis.url, lk_redis.api_key, lk_redis.api_secret,
                            redis_server.address, config=f"prometheus_port: {metrics_port}\ncomposite_receiver: sdk\n",
                            extra_env={"PYEGRESS_PROGRESS_INTERVAL_S": "1", "PYEGRESS_EMPTY_TIMEOUT_S": "3"})
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with worker:
        room_publishers(room_name, 2)
        before = Scrape(url)
        info = await lk.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
            room_name=room_name, file_outputs=[api.EncodedFileOutput(filepath=f"metrics/{room_name}.mp4")]))
        started = time.monotonic()
        await wait_info(lk, info.egress_id, lambda i: i.status == S.EGRESS_ACTIVE)
        during = await scrape_until(url, lambda s: receiving(s, info.egress_id, 4))
        check_running(during, info.egress_id, "room_composite", time.monotonic() - started)
        await lk.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
        await wait_info(lk, info.egress_id, lambda i: i.status == S.EGRESS_COMPLETE)
        after = await scrape_until(url, lambda s: not s.of_egress(info.egress_id), timeout_s=10)
        check_ended(before, after, info.egress_id, "room_composite")
        assert Path(worker.recordings_dir / f"metrics/{room_name}.mp4").stat().st_size > 0
