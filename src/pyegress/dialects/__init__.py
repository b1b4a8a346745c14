"""The REST dialects' services: other systems' recording APIs on top of :class:`EgressService`.

Each dialect is a thin router in ``api/rest/<dialect>.py`` (parse, authorize with
:class:`~pyegress.api.auth.Authorizer`, call, shape the reply; errors rendered per dialect by
``api/errors.py``) over a service here that keeps the dialect's state and rules and follows its
egresses through ``EgressService.add_listener``: :mod:`.rtcstack`, :mod:`.recordings`,
:mod:`.realtimekit`. Services depend on ``service/`` and ``database/``, never on ``api/``; they raise
:class:`~pyegress.errors.EgressError` naming the service's fields (``room_name``), which each
dialect's renderer renames to its own. Wire shapes: docs/wire.md.
"""

from __future__ import annotations

from livekit.protocol import egress as eg

from ..errors import EgressError
from ..service.egress_service import EgressService


async def stop_quietly(service: EgressService, egress_id: str) -> eg.EgressInfo | None:
    """Stop an egress; None if it has already ended (nothing to stop)."""
    try:
        return await service.stop_egress(eg.StopEgressRequest(egress_id=egress_id))
    except EgressError:
        return None
