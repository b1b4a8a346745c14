"""Prometheus metrics of a ``pyegress serve`` or ``pyegress worker`` process (docs/metrics.md).

With ``prometheus_port`` set (LiveKit egress's key, livekit/egress ``pkg/config/service.go``; 0 = off),
:func:`serve_metrics` serves the default ``prometheus_client`` registry on ``http://{host}:{port}/metrics``.
Two kinds of series:

- process-wide counters and gauges below, kept by the code that does the counted thing (admission, the
  webhook sender, the running egresses) whether or not they are served;
- per-egress and per-track series, made at each scrape by :class:`EgressCollector` from what the service
  knows of its egresses that are not over yet: the current count by type and status, each handler's CPU
  time and memory (its process tree, measured with psutil), and each track's receive health as the handler
  last reported it (``progress`` events, :mod:`pyegress.media.source.health`). An egress's series go with
  its end, so their number stays bounded by the egresses running.

Every metric is prefixed ``pyegress_``; units are in the names (``_seconds``, ``_bytes``, ``_hertz``,
counters ``_total``), as Prometheus' naming conventions ask.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter as Tally
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Iterator

import psutil
from livekit.protocol import egress as eg
from prometheus_client import REGISTRY, Counter, Gauge, disable_created_metrics, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .contract.events import UploadTotals

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from .config import Settings
    from .service.egress_job import EgressJob
    from .service.egress_service import EgressService
    from .service.running import RunningEgresses

log = logging.getLogger(__name__)
S = eg.EgressStatus

#: Values of the ``type`` label: the request types of LiveKit's Egress API (StartEgress's unified request
#: counts by its source: ``template`` a room composite, ``web`` a web egress, ``media`` a participant, or a
#: track when its preset is PASSTHROUGH).
EGRESS_TYPES = ("room_composite", "web", "participant", "track_composite", "track")
#: Values of the ``status`` label of :data:`pyegress_egresses` (EgressStatus names of egresses not over).
CURRENT_STATUSES = ("EGRESS_STARTING", "EGRESS_ACTIVE", "EGRESS_ENDING")
#: ... and of ``pyegress_egress_ends_total`` (the final ones).
FINAL_STATUSES = ("EGRESS_COMPLETE", "EGRESS_FAILED", "EGRESS_ABORTED", "EGRESS_LIMIT_REACHED")
#: Values of the ``reason`` label of ``pyegress_egress_failures_total``.
FAILURE_REASONS = ("launch", "recording", "room_connection", "handler_exit", "ending_timeout", "internal",
                   "service_restart")

EGRESS_STARTS = Counter("pyegress_egress_starts", "Egresses started by this process", ["type"])
EGRESS_ENDS = Counter("pyegress_egress_ends", "Egresses of this process that ended, by final status",
                      ["type", "status"])
EGRESS_FAILURES = Counter("pyegress_egress_failures", "Egresses that ended EGRESS_FAILED, by what failed",
                          ["type", "reason"])
ADMISSION_REFUSALS = Counter("pyegress_admission_refusals",
                             "Starts refused for lack of CPU: via the API (429), a bid declined to livekit-server, "
                             "or a claimed job that no longer fit", ["type", "via"])
UPLOAD_BYTES = Counter("pyegress_upload_bytes", "Bytes of output files sent to storage", ["storage"])
UPLOAD_RETRIES = Counter("pyegress_upload_retries", "Upload attempts made after a failed one", ["storage"])
UPLOAD_FAILURES = Counter("pyegress_upload_failures", "Files whose upload failed for good", ["storage"])
UPLOAD_BACKUP_WRITES = Counter("pyegress_upload_backup_writes",
                               "Files stored in the backup destination because their own upload failed", ["storage"])
WEBHOOK_OUTBOX = Gauge("pyegress_webhook_outbox_deliveries",
                       "Undelivered webhooks in the outbox: pending (being retried) or given_up (awaiting replay)",
                       ["state"])
WEBHOOK_DELIVERIES = Counter("pyegress_webhook_deliveries", "Webhooks delivered (2xx answer)")
WEBHOOK_FAILURES = Counter("pyegress_webhook_delivery_failures", "Webhook delivery attempts that failed")

for _type in EGRESS_TYPES:  # every series from the start, so that rate() and absent() work from the first scrape
    EGRESS_STARTS.labels(_type)
    for _status in FINAL_STATUSES:
        EGRESS_ENDS.labels(_type, _status)
    for _reason in FAILURE_REASONS:
        EGRESS_FAILURES.labels(_type, _reason)
    for _via in ("api", "bid", "claim"):
        ADMISSION_REFUSALS.labels(_type, _via)
for _state in ("pending", "given_up"):
    WEBHOOK_OUTBOX.labels(_state)


def egress_type(message) -> str:
    """The ``type`` label (:data:`EGRESS_TYPES`) of an ``EgressInfo`` or ``rpc.StartEgressRequest`` (both
    have the ``request`` oneof); "" for a message without a request."""
    kind = message.WhichOneof("request") or ""
    if kind != "egress":
        return kind
    unified = message.egress
    source = unified.WhichOneof("source")
    if source in ("template", "web"):
        return "room_composite" if source == "template" else "web"
    passthrough = unified.WhichOneof("encoding") == "preset" and unified.preset == eg.EncodingOptionsPreset.PASSTHROUGH
    return "track" if passthrough else "participant"


def egress_failed(info: eg.EgressInfo, reason: str) -> None:
    """Count ``info``'s failure with ``reason`` (:data:`FAILURE_REASONS`)."""
    EGRESS_FAILURES.labels(egress_type(info), reason).inc()


def egress_left_behind(info: eg.EgressInfo) -> None:
    """Count the end of an egress a previous run left active (ended FAILED at this run's start)."""
    EGRESS_ENDS.labels(egress_type(info), S.Name(info.status)).inc()
    egress_failed(info, "service_restart")


class EgressCounts:
    """Counts starts and ends from the service's saves (an :meth:`EgressService.add_listener` listener): an
    egress starts when first saved not over, and ends when first saved over after that."""

    def __init__(self) -> None:
        self._current: dict[str, str] = {}  # egress ID -> type, of egresses started and not over

    def __call__(self, info: eg.EgressInfo) -> None:
        if info.status in (S.EGRESS_STARTING, S.EGRESS_ACTIVE, S.EGRESS_ENDING):
            if info.egress_id not in self._current:
                self._current[info.egress_id] = kind = egress_type(info)
                EGRESS_STARTS.labels(kind).inc()
        elif (kind := self._current.pop(info.egress_id, None)) is not None:
            EGRESS_ENDS.labels(kind, S.Name(info.status)).inc()


def count_uploads(before: list[UploadTotals], now: list[UploadTotals]) -> None:
    """Add what an egress uploaded between two of its handler's reports (cumulative totals) to the counters."""
    previous = {t.storage: t for t in before}
    for t in now:
        p = previous.get(t.storage) or UploadTotals(storage=t.storage)
        for counter, delta in ((UPLOAD_BYTES, t.bytes - p.bytes), (UPLOAD_RETRIES, t.retries - p.retries),
                               (UPLOAD_FAILURES, t.failures - p.failures),
                               (UPLOAD_BACKUP_WRITES, t.backup_writes - p.backup_writes)):
            if delta > 0:
                counter.labels(t.storage).inc(delta)


@dataclass
class _Usage:
    proc: psutil.Process
    cpu_s: float = 0.0  # the most CPU time seen: a child that exits unwaited must not make it go back


class EgressCollector(Collector):
    """Per-egress and per-track series of the egresses in ``jobs`` that are not over (see the module's doc).
    Runs on the metrics server's threads: it reads the jobs' records, never changes them."""

    def __init__(self, jobs: RunningEgresses) -> None:
        self.jobs = jobs
        self._usage: dict[str, _Usage] = {}
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        current = [job for job in self.jobs.all() if S.Name(job.info.status) in CURRENT_STATUSES]
        egresses = GaugeMetricFamily("pyegress_egresses", "Egresses of this process not over, by type and status",
                                     labels=["type", "status"])
        counts = Tally((egress_type(job.info), S.Name(job.info.status)) for job in current)
        for kind in dict.fromkeys([*EGRESS_TYPES, *(k for k, _ in counts)]):
            for status in CURRENT_STATUSES:
                egresses.add_metric([kind, status], counts[(kind, status)])
        yield egresses
        with self._lock:
            yield from self._usage_metrics(current)
        yield from self._track_metrics(current)

    def _usage_metrics(self, current: list[EgressJob]) -> Iterable[Metric]:
        cpu = CounterMetricFamily("pyegress_egress_cpu_seconds",
                                  "CPU time (user + system) of an egress's handler process and its children",
                                  labels=["egress_id", "type"])
        memory = GaugeMetricFamily("pyegress_egress_memory_bytes",
                                   "Resident memory of an egress's handler process and its children",
                                   labels=["egress_id", "type"])
        live: set[str] = set()
        for job in current:
            pid = job.handler.pid if job.handler is not None else None
            if pid is None:
                continue
            usage = self._usage.get(job.egress_id)
            try:
                if usage is None or usage.proc.pid != pid:
                    usage = self._usage[job.egress_id] = _Usage(psutil.Process(pid))
                cpu_s, rss = _tree_usage(usage.proc)
            except psutil.Error:  # exited between the listing and now
                continue
            usage.cpu_s = max(usage.cpu_s, cpu_s)
            live.add(job.egress_id)
            labels = [job.egress_id, egress_type(job.info)]
            cpu.add_metric(labels, usage.cpu_s)
            memory.add_metric(labels, rss)
        for gone in self._usage.keys() - live:
            del self._usage[gone]
        return cpu, memory

    @staticmethod
    def _track_metrics(current: list[EgressJob]) -> Iterable[Metric]:
        labels = ["egress_id", "track_id", "kind"]
        frames = CounterMetricFamily("pyegress_track_received_frames",
                                     "Frames (video pictures or samples; audio frames or Opus packets) received "
                                     "of a track", labels=labels)
        rate = GaugeMetricFamily("pyegress_track_frame_rate_hertz",
                                 "Frames received per second of a track over the handler's last report interval",
                                 labels=labels)
        freezes = CounterMetricFamily("pyegress_track_freezes", "Freezes of a video track (W3C webrtc-stats "
                                      "freezeCount)", labels=labels)
        frozen = CounterMetricFamily("pyegress_track_freeze_seconds", "Time a video track spent frozen",
                                     labels=labels)
        for job in current:
            for track in job.receive:
                values = [job.egress_id, track.track_id, track.kind]
                frames.add_metric(values, track.frames)
                rate.add_metric(values, track.frame_rate)
                if track.kind == "video":
                    freezes.add_metric(values, track.freezes)
                    frozen.add_metric(values, track.freeze_ns / 1e9)
        return frames, rate, freezes, frozen


def _tree_usage(proc: psutil.Process) -> tuple[float, int]:
    """CPU seconds and resident bytes of ``proc`` and its descendants (a child that exited and was waited
    for is in its parent's ``children_*`` times).

    Raises:
        psutil.Error: ``proc`` itself is gone.
    """
    cpu_s, rss = 0.0, 0
    with proc.oneshot():
        procs = [proc, *proc.children(recursive=True)]
    for i, p in enumerate(procs):
        try:
            with p.oneshot():
                t = p.cpu_times()
                cpu_s += t.user + t.system + t.children_user + t.children_system
                rss += p.memory_info().rss
        except psutil.Error:
            if i == 0:
                raise
    return cpu_s, rss


class MetricsServer:
    """The ``/metrics`` endpoint of one service: :meth:`close` stops it and takes its egresses' series away."""

    def __init__(self, httpd: WSGIServer, thread: threading.Thread, collector: EgressCollector) -> None:
        self._httpd, self._thread, self.collector = httpd, thread, collector

    @property
    def port(self) -> int:
        return self._httpd.server_port

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)
        REGISTRY.unregister(self.collector)


def serve_metrics(settings: Settings, service: EgressService) -> MetricsServer | None:
    """Serve the metrics on ``settings.host``:``settings.prometheus_port`` (any path answers; Prometheus scrapes
    ``/metrics``), with ``service``'s egresses; None when ``prometheus_port`` is 0.

    Raises:
        OSError: the port cannot be bound.
    """
    if not settings.prometheus_port:
        return None
    disable_created_metrics()  # no *_created series: Prometheus does not need them
    collector = EgressCollector(service.jobs)
    REGISTRY.register(collector)
    try:
        httpd, thread = start_http_server(settings.prometheus_port, settings.host)
    except OSError:
        REGISTRY.unregister(collector)
        raise
    log.info("metrics on http://%s:%d/metrics", settings.host, settings.prometheus_port)
    return MetricsServer(httpd, thread, collector)
