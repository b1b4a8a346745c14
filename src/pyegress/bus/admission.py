"""What a job from livekit-server costs, in LiveKit's terms (its ``rpc.StartEgressRequest``); the
budget itself is the service's (:mod:`pyegress.service.admission`)."""

from __future__ import annotations

from ..config import CPUCostConfig
from ..psrpc.pb import rpc_egress_pb2 as rpc


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
