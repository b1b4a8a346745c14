"""CPU admission of the service's starts: the egress's cores are reserved before any work is done for it."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any, Callable

from ..bus.admission import egress_cost
from ..config import CPUCostConfig
from ..errors import EgressError
from ..ids import new_egress_id


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


def composite_cost(arguments: dict[str, Any], costs: CPUCostConfig) -> float:
    """The cores of a ``_start_composite`` call: by request kind and audio-only, a ``custom_base_url`` page as web."""
    kind = "web" if arguments.get("template_base_url") else arguments["kind"]
    return egress_cost(kind, arguments["video"], costs)


def track_cost(arguments: dict[str, Any], costs: CPUCostConfig) -> float:
    """The cores of a track egress."""
    return egress_cost("track", False, costs)
