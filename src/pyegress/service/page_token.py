"""ListEgress's ``page_token`` / ``next_page_token`` (``TokenPagination``, livekit_egress.proto): opaque to
clients, signed here.

A token names the last egress of a page (its ``created_at`` and ID) and is bound to the request's filters
(``room_name``, ``egress_id``, ``active``) by an HMAC under the service's API secret: it cannot be edited
to point elsewhere, and a token from one listing does not continue another (a room-limited caller's
listing is narrowed to its room before this is checked, so a token cannot carry it into another room).
LiveKit's own tokens (livekit/protocol ``livekit/types.go``) are base64 JSON too, but unsigned.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from livekit.protocol import egress as eg

from ..errors import invalid

_MAC_BYTES = 16


def _mac(secret: str, body: bytes, req: eg.ListEgressRequest) -> bytes:
    scope = json.dumps(["ListEgress", req.room_name, req.egress_id, req.active]).encode()
    return hmac.new(secret.encode(), scope + b"\0" + body, hashlib.sha256).digest()[:_MAC_BYTES]


def encode(secret: str, req: eg.ListEgressRequest, after: tuple[int, str]) -> str:
    """The token that continues ``req``'s listing after the egress at ``after`` (``(created_at, egress_id)``)."""
    body = json.dumps(list(after), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(body + _mac(secret, body, req)).decode().rstrip("=")


def decode(secret: str, req: eg.ListEgressRequest) -> tuple[int, str] | None:
    """Where ``req.page_token`` continues (None for an empty token: the first page).

    Raises:
        EgressError: ``invalid_argument`` naming ``page_token`` for a token this service did not issue
            for these filters.
    """
    token = req.page_token.token
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError:
        raw = b""
    body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    if len(raw) <= _MAC_BYTES or not hmac.compare_digest(mac, _mac(secret, body, req)):
        raise invalid("page_token", "not a next_page_token this service gave for this room_name, egress_id "
                      "and active")
    created_at, egress_id = json.loads(body)
    return int(created_at), str(egress_id)
