"""REST dialects of other recording systems, served beside the Twirp API on the same app.

Each dialect is a thin router over its dialect service in :mod:`pyegress.dialects`
(which turns its JSON into ``livekit-protocol`` requests for the in-process
:class:`~pyegress.service.egress_service.EgressService` and follows its egresses with
``EgressService.add_listener``): it parses, authorizes (:class:`~pyegress.api.auth.Authorizer`),
calls and shapes the reply; what it raises is answered in its dialect by :mod:`pyegress.api.errors`.
What the routers share is here: time formats, room name checks, OpenAPI bodies.
"""

from __future__ import annotations

from datetime import datetime, timezone

from pydantic import BaseModel



def iso_ms(value: datetime | int | None) -> str | None:
    """``2024-04-21T10:00:00.000Z`` (JavaScript's ``Date.toJSON``) from a datetime (naive = UTC, as
    SQLite returns them) or Unix nanoseconds; None stays None, and so does 0 ns (not set)."""
    if value is None or value == 0:
        return None
    if isinstance(value, int):
        value = datetime.fromtimestamp(value / 1e9, timezone.utc)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def safe_room_name(name: str) -> str | None:
    """Why ``name`` cannot name a room whose recordings are stored under it, or None if it can: it
    becomes a directory of the storage key, so no separators, dot names or control characters."""
    if not name.strip():
        return "is required"
    if len(name) > 256:
        return "must be at most 256 characters"
    if name in (".", "..") or any(c in name for c in "/\\") or any(ord(c) < 32 for c in name):
        return "must not contain '/', '\\', control characters, or be '.' or '..'"
    return None


def openapi_body(model: type[BaseModel]) -> dict:
    """The OpenAPI ``requestBody`` (for ``openapi_extra``) of a route that parses ``model`` from its JSON
    itself, so that its errors are its dialect's: the model's JSON schema with its ``$defs`` inlined,
    since OpenAPI resolves ``$ref`` from the document's root. The models are not recursive."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node):
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return {"requestBody": {"required": True, "content": {"application/json": {"schema": inline(schema)}}}}
