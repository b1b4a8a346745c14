"""CPU-cost admission, as LiveKit's egress decides what a worker claims (livekit/egress ``pkg/stats/monitor.go``).

Each request type reserves a configured number of cores (``cpu_cost``). With no
egress running a worker has all its cores; otherwise it has
``cores × max_cpu_utilization − Σ max(reserved, measured)`` over its egresses,
and it accepts a request only when that covers the request's cost.
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil

from ..config import CPUCostConfig
from .pb import rpc_egress_pb2 as rpc


def machine_cores() -> float:
    """CPU cores this process may use: the cgroup v2 quota (``cpu.max``) if set, else the affinity mask."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            return int(quota) / int(period)
    except (OSError, ValueError):
        pass
    return float(len(os.sched_getaffinity(0)))


def request_cost(req: rpc.StartEgressRequest, costs: CPUCostConfig) -> float:
    """Cores a request reserves: livekit-server's ``estimated_cpu`` if given, else the type's configured cost."""
    if req.estimated_cpu > 0:
        return req.estimated_cpu
    kind = req.WhichOneof("request")
    if kind == "egress":  # the unified request: its source decides, as in the Go egress
        source = req.egress.WhichOneof("source")
        if source == "web":
            return costs.audio_web_cpu_cost if req.egress.web.audio_only else costs.web_cpu_cost
        if source == "media":
            return costs.participant_cpu_cost
        return (costs.audio_room_composite_cpu_cost if req.egress.template.audio_only
                else costs.room_composite_cpu_cost)
    if kind == "room_composite":
        return costs.audio_room_composite_cpu_cost if req.room_composite.audio_only else costs.room_composite_cpu_cost
    if kind == "web":
        return costs.audio_web_cpu_cost if req.web.audio_only else costs.web_cpu_cost
    return {"participant": costs.participant_cpu_cost, "track_composite": costs.track_composite_cpu_cost,
            "track": costs.track_cpu_cost}.get(kind, costs.room_composite_cpu_cost)


class CpuAdmission:
    """Tracks the cores reserved by this worker's egresses and says whether another fits.

    ``cores`` defaults to :func:`machine_cores`. Measured use comes from each
    egress's worker process (psutil), in cores.
    """

    def __init__(self, costs: CPUCostConfig, cores: float | None = None) -> None:
        self.costs = costs
        self.cores = cores or machine_cores()
        self._reserved: dict[str, float] = {}
        self._procs: dict[str, psutil.Process] = {}

    @property
    def max_utilization(self) -> float:
        u = self.costs.max_cpu_utilization
        return u if 0 < u <= 1 else 0.8  # LiveKit's default for out-of-range values

    def reserve(self, egress_id: str, cost: float) -> None:
        self._reserved[egress_id] = cost

    def attach(self, egress_id: str, pid: int) -> None:
        """Measure ``egress_id``'s use from process ``pid`` from now on."""
        try:
            proc = psutil.Process(pid)
            proc.cpu_percent(None)  # the first call only sets the baseline
            self._procs[egress_id] = proc
        except psutil.Error:
            pass

    def release(self, egress_id: str) -> None:
        self._reserved.pop(egress_id, None)
        self._procs.pop(egress_id, None)

    def _used(self, egress_id: str) -> float:
        proc = self._procs.get(egress_id)
        measured = 0.0
        if proc is not None:
            try:
                measured = proc.cpu_percent(None) / 100
            except psutil.Error:
                pass
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
