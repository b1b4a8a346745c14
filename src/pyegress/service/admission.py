"""CPU-cost admission, as LiveKit's egress decides what a worker claims (livekit/egress ``pkg/stats/monitor.go``).

Each request type reserves a configured number of cores (``cpu_cost``). With no
egress running a handler has all its cores; otherwise it has
``cores × max_cpu_utilization − Σ max(reserved, measured)`` over its egresses,
and it accepts a request only when that covers the request's cost. One
:class:`CpuAdmission` per process (the :class:`~pyegress.service.egress_service.EgressService`'s)
counts every egress, whether it came from pyegress's own API or from livekit-server.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import time
from pathlib import Path
from typing import Any, Callable

import psutil

from .. import metrics
from ..config import CPUCostConfig
from ..errors import EgressError
from ..ids import new_egress_id


def machine_cores() -> float:
    """CPU cores this process may use: the cgroup v2 quota (``cpu.max``) if set, else the affinity mask."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            return int(quota) / int(period)
    except (OSError, ValueError):
        pass
    return float(len(os.sched_getaffinity(0)))


def egress_cost(source: str, video: bool, costs: CPUCostConfig) -> float:
    """Cores an egress of JobSpec ``source`` reserves; ``video`` False means audio only. A room composite
    recorded through its ``custom_base_url`` page has source ``web``: it runs Chromium, so it costs a web egress."""
    if source == "web":
        return costs.web_cpu_cost if video else costs.audio_web_cpu_cost
    if source == "room_composite":
        return costs.room_composite_cpu_cost if video else costs.audio_room_composite_cpu_cost
    if source == "track":
        return costs.track_cpu_cost
    if source == "track_composite":
        return costs.track_composite_cpu_cost
    return costs.participant_cpu_cost  # participant, and media (the Go egress counts it as a participant)


#: Shortest interval (s) over which an egress's CPU use is measured: psutil averages since the previous
#: call, and over a few ms (a burst of starts asks many times) the 10 ms tick granularity makes it noise.
MEASURE_INTERVAL_S = 1.0


class CpuAdmission:
    """Tracks the cores reserved by this process's egresses and says whether another fits.

    ``cores`` defaults to :func:`machine_cores`. Measured use comes from each
    egress's handler process (psutil), in cores, averaged over at least
    :data:`MEASURE_INTERVAL_S`.
    """

    def __init__(self, costs: CPUCostConfig, cores: float | None = None) -> None:
        self.costs = costs
        self.cores = cores or machine_cores()
        self._reserved: dict[str, float] = {}
        self._procs: dict[str, psutil.Process] = {}
        self._measured: dict[str, tuple[float, float]] = {}  # egress ID -> (monotonic s of sample, cores)

    @property
    def max_utilization(self) -> float:
        u = self.costs.max_cpu_utilization
        return u if 0 < u <= 1 else 0.8  # LiveKit's default for out-of-range values

    def reserve(self, egress_id: str, cost: float) -> None:
        self._reserved[egress_id] = cost

    def admit(self, egress_id: str, cost: float) -> bool:
        """Reserve ``cost`` cores for ``egress_id`` if they are available; True if it is admitted (also
        when it already was, e.g. a job livekit-server's bid reserved). Check and reservation are one step,
        so concurrent starts on the event loop cannot overbook."""
        if egress_id in self._reserved:
            return True
        if not self.can_accept(cost):
            return False
        self.reserve(egress_id, cost)
        return True

    def attach(self, egress_id: str, pid: int) -> None:
        """Measure ``egress_id``'s use from process ``pid`` from now on."""
        try:
            proc = psutil.Process(pid)
            proc.cpu_percent(None)  # the first call only sets the baseline
            self._procs[egress_id] = proc
            self._measured[egress_id] = (time.monotonic(), 0.0)
        except psutil.Error:
            pass

    def release(self, egress_id: str) -> None:
        """Forget ``egress_id`` (its cores are free again); releasing twice is harmless."""
        self._reserved.pop(egress_id, None)
        self._procs.pop(egress_id, None)
        self._measured.pop(egress_id, None)

    def _used(self, egress_id: str) -> float:
        proc = self._procs.get(egress_id)
        measured = 0.0
        if proc is not None:
            sampled_at, measured = self._measured[egress_id]
            now = time.monotonic()
            if now - sampled_at >= MEASURE_INTERVAL_S:
                try:
                    measured = proc.cpu_percent(None) / 100
                except psutil.Error:
                    measured = 0.0
                self._measured[egress_id] = (now, measured)
        return max(self._reserved.get(egress_id, 0.0), measured)

    def available(self) -> float:
        """Cores free for a new egress."""
        if not self._reserved:
            return self.cores
        return self.cores * self.max_utilization - sum(self._used(e) for e in self._reserved)

    def can_accept(self, cost: float) -> bool:
        return self.available() >= cost

    @property
    def active(self) -> int:
        return len(self._reserved)


def admitted(cost: Callable[[dict[str, Any], CPUCostConfig], float]):
    """Decorates an :class:`~.egress_service.EgressService` start method that takes ``opts``: before it runs,
    ``cost(arguments, cpu_cost)`` cores are reserved in ``self.admission`` under the egress's ID (``opts.egress_id``,
    assigned here if empty), so a refusal costs no lookup and concurrent starts cannot overbook; the cores are
    given back if the start fails. A reservation made earlier for that ID (livekit-server's bid) is kept.

    Raises:
        EgressError: ``resource_exhausted`` (Twirp HTTP 429) when the cores are not available.
    """
    def wrap(method):
        signature = inspect.signature(method)

        @functools.wraps(method)
        async def start(self, *args, **kwargs):
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            opts = bound.arguments["opts"]
            if not opts.egress_id:
                opts = bound.arguments["opts"] = dataclasses.replace(opts, egress_id=new_egress_id())
            need = cost(bound.arguments, self.settings.cpu_cost)
            if not self.admission.admit(opts.egress_id, need):
                metrics.ADMISSION_REFUSALS.labels(refused_type(bound.arguments), "api").inc()
                # LiveKit answers "no response from servers" (unavailable) once its workers all decline; one
                # server knows why, and 429 tells a client to come back later rather than that pyegress is down
                raise EgressError("resource_exhausted", f"not enough CPU: this egress needs {need:g} cores, "
                                  f"{max(self.admission.available(), 0.0):.2f} are free; try again later")
            try:
                return await method(*bound.args, **bound.kwargs)
            except BaseException:
                self.admission.release(opts.egress_id)
                raise
        return start
    return wrap


def refused_type(arguments: dict[str, Any]) -> str:
    """The metrics' ``type`` of an :func:`admitted` start: ``_start_composite``'s ``kind`` (its ``media`` counted as
    a participant), else a track (the track and PASSTHROUGH starts)."""
    kind = arguments.get("kind", "track")
    return "participant" if kind == "media" else kind


def composite_cost(arguments: dict[str, Any], costs: CPUCostConfig) -> float:
    """The cores of a ``_start_composite`` call: by request kind and audio-only, a ``custom_base_url`` page as web."""
    kind = "web" if arguments.get("template_base_url") else arguments["kind"]
    return egress_cost(kind, arguments["video"], costs)


def track_cost(arguments: dict[str, Any], costs: CPUCostConfig) -> float:
    """The cores of a track egress."""
    return egress_cost("track", False, costs)
