"""The parts of the Prometheus metrics that need no server: freeze detection, the collector's series from
the service's egress records (a real child process for CPU and memory), start/end/upload counting, the
upload queue's totals, and the ``prometheus_port`` setting (docs/metrics.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from livekit.protocol import egress as eg
from prometheus_client import CollectorRegistry, REGISTRY
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pyegress import metrics
from pyegress.config import Settings
from pyegress.contract.events import TrackReceive, UploadTotals
from pyegress.media.source.health import ReceiveHealth
from pyegress.psrpc.pb import rpc_egress_pb2 as rpc
from pyegress.storage.base import Storage
from pyegress.storage.uploads import UploadQueue

S = eg.EgressStatus
MS = 1_000_000


def value(name: str, registry=REGISTRY, **labels) -> float:
    """A sample's value (0 when the series does not exist)."""
    return registry.get_sample_value(name, labels) or 0.0


def samples(registry) -> dict[tuple[str, tuple], float]:
    """Every sample of ``registry`` as the text exposition gives it: (name, sorted labels) → value."""
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


# ---- receive health ---------------------------------------------------------------------------------------
def test_freezes_are_intervals_of_three_times_the_mean_or_150_ms_more():
    health = ReceiveHealth(clock=lambda: 0)
    health.add("TR_v", "video")
    t = 0
    for _ in range(40):  # 30 fps: the mean is 33 ms, so a freeze is >= 183 ms
        t += 33 * MS
        health.frame("TR_v", t)
    health.frame("TR_v", t := t + 150 * MS)  # late, but no freeze
    health.frame("TR_v", t := t + 200 * MS)  # a freeze
    for _ in range(5):
        health.frame("TR_v", t := t + 33 * MS)
    (report,) = health.report()
    assert (report.frames, report.freezes, report.freeze_ns) == (47, 1, 200 * MS)

    health.gap("TR_v")  # muted: the silence is no freeze
    health.frame("TR_v", t + 5_000 * MS)
    assert health.report()[0].freezes == 1


def test_slow_tracks_freeze_only_when_much_slower_still():
    health = ReceiveHealth(clock=lambda: 0)
    health.add("TR_slide", "video")
    t = 0
    for _ in range(10):  # a 5 fps screen share: 200 ms intervals, a freeze is >= 600 ms
        health.frame("TR_slide", t := t + 200 * MS)
    health.frame("TR_slide", t := t + 500 * MS)
    assert health.report()[0].freezes == 0
    health.frame("TR_slide", t + 700 * MS)
    assert health.report()[0].freezes == 1


def test_frame_rate_over_the_report_interval_and_audio_counted_only():
    now = [0]
    health = ReceiveHealth(clock=lambda: now[0])
    health.add("TR_a", "audio")
    health.add("TR_v", "video")
    for i in range(100):
        health.frame("TR_a")
        if i % 2 == 0:
            health.frame("TR_v", i * 20 * MS)
    now[0] = 2_000 * MS
    report = {r.track_id: r for r in health.report()}
    assert (report["TR_a"].frame_rate, report["TR_v"].frame_rate) == (50.0, 25.0)
    assert report["TR_a"].freezes == 0 and report["TR_a"].frames == 100
    now[0] = 3_000 * MS  # nothing came since the last report
    assert {r.track_id: r.frame_rate for r in health.report()} == {"TR_a": 0.0, "TR_v": 0.0}
    health.remove("TR_a")
    health.frame("TR_a")  # a frame of a track already gone is ignored
    assert [r.track_id for r in health.report()] == ["TR_v"]


# ---- types, starts and ends -----------------------------------------------------------------------------
def test_egress_types_of_every_request():
    info = eg.EgressInfo(room_composite=eg.RoomCompositeEgressRequest())
    assert metrics.egress_type(info) == "room_composite"
    assert metrics.egress_type(eg.EgressInfo(track=eg.TrackEgressRequest())) == "track"
    template = eg.StartEgressRequest(template=eg.TemplateSource())
    assert metrics.egress_type(eg.EgressInfo(egress=template)) == "room_composite"
    media = eg.StartEgressRequest(media=eg.MediaSource(video_track_id="TR"))
    assert metrics.egress_type(eg.EgressInfo(egress=media)) == "participant"
    media.preset = eg.EncodingOptionsPreset.PASSTHROUGH
    assert metrics.egress_type(eg.EgressInfo(egress=media)) == "track"
    assert metrics.egress_type(rpc.StartEgressRequest(web=eg.WebEgressRequest(url="https://x"))) == "web"


def test_starts_and_ends_are_counted_once_from_the_saves():
    counts = metrics.EgressCounts()
    before = (value("pyegress_egress_starts_total", type="participant"),
              value("pyegress_egress_ends_total", type="participant", status="EGRESS_COMPLETE"))
    info = eg.EgressInfo(egress_id="EG_count", participant=eg.ParticipantEgressRequest(), status=S.EGRESS_STARTING)
    for status in (S.EGRESS_STARTING, S.EGRESS_ACTIVE, S.EGRESS_ACTIVE, S.EGRESS_ENDING, S.EGRESS_COMPLETE,
                   S.EGRESS_COMPLETE):
        info.status = status
        counts(info)
    after = (value("pyegress_egress_starts_total", type="participant"),
             value("pyegress_egress_ends_total", type="participant", status="EGRESS_COMPLETE"))
    assert after == (before[0] + 1, before[1] + 1)


def test_upload_deltas_between_reports():
    before = value("pyegress_upload_bytes_total", storage="gcs"), value("pyegress_upload_retries_total", storage="gcs")
    first = [UploadTotals(storage="gcs", bytes=1000, retries=1)]
    metrics.count_uploads([], first)
    metrics.count_uploads(first, [UploadTotals(storage="gcs", bytes=2500, retries=1)])
    assert (value("pyegress_upload_bytes_total", storage="gcs"),
            value("pyegress_upload_retries_total", storage="gcs")) == (before[0] + 2500, before[1] + 1)


# ---- the collector --------------------------------------------------------------------------------------
class Jobs:
    """Stands in for RunningEgresses (``all()``): the collector reads nothing else."""

    def __init__(self, *jobs) -> None:
        self.jobs = list(jobs)

    def all(self):
        return list(self.jobs)


def job(egress_id: str, status: int, pid: int | None, receive=()) -> SimpleNamespace:
    info = eg.EgressInfo(egress_id=egress_id, status=status, room_composite=eg.RoomCompositeEgressRequest())
    return SimpleNamespace(egress_id=egress_id, info=info, receive=list(receive),
                           handler=SimpleNamespace(pid=pid) if pid else None)


def test_collector_series_follow_the_egresses():
    """A real process burns CPU and holds memory (with a child, counted too); series go with the egress's end."""
    burn = "import subprocess, sys, time\nx = bytearray(64 << 20)\n" \
           "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n" \
           "t = time.process_time()\nwhile time.process_time() - t < 0.5: pass\nprint('ok', flush=True)\n" \
           "time.sleep(30)\n"
    proc = subprocess.Popen([sys.executable, "-c", burn], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ok"
        tracks = [TrackReceive(track_id="TR_v", kind="video", frames=300, frame_rate=29.5, freezes=2,
                               freeze_ns=450 * MS), TrackReceive(track_id="TR_a", kind="audio", frames=500,
                                                                 frame_rate=50.0)]
        active = job("EG_a", S.EGRESS_ACTIVE, proc.pid, tracks)
        jobs = Jobs(active, job("EG_s", S.EGRESS_STARTING, None))
        registry = CollectorRegistry()
        registry.register(metrics.EgressCollector(jobs))
        got = samples(registry)
        assert got[("pyegress_egresses", (("status", "EGRESS_ACTIVE"), ("type", "room_composite")))] == 1
        assert got[("pyegress_egresses", (("status", "EGRESS_STARTING"), ("type", "room_composite")))] == 1
        assert got[("pyegress_egresses", (("status", "EGRESS_ACTIVE"), ("type", "web")))] == 0
        labels = (("egress_id", "EG_a"), ("type", "room_composite"))
        assert 0.5 <= got[("pyegress_egress_cpu_seconds_total", labels)] < 5
        assert 64 << 20 < got[("pyegress_egress_memory_bytes", labels)] < 1 << 30
        video = (("egress_id", "EG_a"), ("kind", "video"), ("track_id", "TR_v"))
        audio = (("egress_id", "EG_a"), ("kind", "audio"), ("track_id", "TR_a"))
        assert got[("pyegress_track_frame_rate_hertz", video)] == 29.5
        assert got[("pyegress_track_received_frames_total", audio)] == 500
        assert got[("pyegress_track_freezes_total", video)] == 2
        assert got[("pyegress_track_freeze_seconds_total", video)] == 0.45
        assert ("pyegress_track_freezes_total", audio) not in got  # audio is not timed
        assert not any(name == "pyegress_egress_cpu_seconds_total" and dict(lbl)["egress_id"] == "EG_s"
                       for name, lbl in got)  # no handler yet: no usage

        active.info.status = S.EGRESS_COMPLETE  # over: every series of the egress goes
        got = samples(registry)
        assert not [key for key in got if ("egress_id", "EG_a") in key[1]]
        assert got[("pyegress_egresses", (("status", "EGRESS_ACTIVE"), ("type", "room_composite")))] == 0
    finally:
        proc.kill()
        proc.wait()


# ---- upload totals --------------------------------------------------------------------------------------
class Down(Storage):
    """A destination that always fails."""

    kind: str = "s3"

    def _put(self, path, key):
        raise OSError("down")

    def describe(self):
        return "down"

    def _object_location(self, key):
        return f"s3://down/{key}"


class Disk(Storage):
    """A destination that copies into ``root``."""

    kind: str = "sftp"
    root: str

    def _put(self, path, key):
        target = Path(self.root, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())

    def describe(self):
        return self.root

    def _object_location(self, key):
        return f"sftp://{key}"


def test_upload_queue_totals(tmp_path, monkeypatch):
    monkeypatch.setattr("pyegress.storage.base.time.sleep", lambda s: None)
    queue = UploadQueue(attempts=3, base_delay_s=0.01, backup=Disk(root=str(tmp_path / "backup")))
    down = Down()
    for name, size in (("a.ts", 1000), ("b.ts", 500)):
        (tmp_path / name).write_bytes(b"x" * size)
        queue.submit(down, tmp_path / name, f"hls/{name}")
    (tmp_path / "c.ts").write_bytes(b"y" * 42)
    queue.submit(Disk(root=str(tmp_path / "up")), tmp_path / "c.ts", "hls/c.ts")
    queue.drain()
    totals = {t.storage: t for t in queue.stats.totals()}
    # a.ts: 3 tries (2 retries), then the destination counts as down: b.ts gets 1 try
    assert totals["s3"] == UploadTotals(storage="s3", retries=2, failures=2)
    assert totals["sftp"] == UploadTotals(storage="sftp", bytes=1542, backup_writes=2)


# ---- the setting ----------------------------------------------------------------------------------------
def test_prometheus_port_setting(monkeypatch, tmp_path):
    for name in ("PYEGRESS_CONFIG", "EGRESS_CONFIG_FILE", "PYEGRESS_PROMETHEUS_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EGRESS_CONFIG_BODY", "prometheus_port: 6789\n")
    assert Settings().prometheus_port == 6789
    monkeypatch.setenv("PYEGRESS_PROMETHEUS_PORT", "0")
    assert Settings().prometheus_port == 0 and metrics.serve_metrics(Settings(), None) is None
    monkeypatch.setenv("PYEGRESS_PROMETHEUS_PORT", "70000")
    with pytest.raises(ValueError, match="prometheus_port"):
        Settings()


def test_served_on_the_port(monkeypatch):
    """Any scrape of the port answers with the registry; close frees the port and the collector."""
    import httpx

    from pyegress.devtools.process import free_port

    port = free_port()
    settings = Settings(prometheus_port=port)
    server = metrics.serve_metrics(settings, SimpleNamespace(jobs=Jobs()))
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert 'pyegress_egresses{status="EGRESS_ACTIVE",type="track"} 0.0' in text
        assert "pyegress_egress_starts_total" in text and "_created" not in text
    finally:
        server.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
