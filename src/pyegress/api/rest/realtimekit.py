"""Cloudflare RealtimeKit's recordings resource over HTTP (docs/realtimekit.md; wire shapes: docs/wire.md).

Served under ``/client/v4/accounts/{account_id}/realtime/kit/{app_id}/`` (the
``cloudflare`` SDK with ``base_url=".../client/v4"``) and the same without
``/client/v4``:

| method | path | reply |
|---|---|---|
| POST | ``recordings`` | ``{success, data: Recording}`` |
| POST | ``recordings/track`` | ``{success, data: {recording: Recording}}`` (5.0-5.2 ignore it) |
| GET | ``recordings`` | ``{success, data: [Recording], paging}`` |
| GET | ``recordings/{id}`` | ``{success, data: Recording}`` |
| GET | ``recordings/active-recording/{meeting_id}`` | ``{success, data: Recording}`` |
| PUT | ``recordings/{id}`` ``{"action": stop\\|pause\\|resume}`` | ``{success, data: Recording}`` |

Auth is ``Authorization: Bearer <LiveKit JWT>`` with the ``roomRecord`` grant and an identity, the
user (:class:`~pyegress.api.auth.Authorizer`); a token naming a room acts on that meeting only (403).
Errors are RealtimeKit's ``{"success": false, "error": {"code": <HTTP status>, "message", "field"?}}``
(:func:`pyegress.api.errors.realtimekit_error`, for everything raised here): 400 malformed JSON or a
state conflict, 401 auth, 403 another meeting, 404 unknown (or another user's) recording, 422 an
invalid field. 409 is avoided: the SDK retries it. What a recording does is the dialect service's,
:class:`~pyegress.dialects.realtimekit.RealtimeKitRecordings`; this parses, authorizes and shapes replies.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import datetime, timezone

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from ...database.realtimekit_store import RealtimeKitRecording
from ...dialects.realtimekit import Action, CompositeStart, RealtimeKitRecordings, TrackStart
from ...errors import EgressError, invalid
from ..auth import Authorizer, Caller
from . import iso_ms, openapi_body, safe_room_name

log = logging.getLogger(__name__)

KIT = "/accounts/{account_id}/realtime/kit/{app_id}"
PREFIXES = ("/client/v4", "")
_STATUSES = ("INVOKED", "RECORDING", "UPLOADING", "UPLOADED", "ERRORED", "PAUSED")
#: Paging bounds: ``per_page`` as RealtimeKit's API; ``page_no`` so the row offset stays a 64-bit integer.
_PAGING = (("page_no", 1, 10**9), ("per_page", 20, 100))
_NS_RANGE = (-(2**63), 2**63 - 1)  # times are stored as int64 Unix nanoseconds
#: The list route reads its query itself (repeated ``status``, floats from the SDK); OpenAPI still says what it takes.
_LIST_PARAMETERS = {"parameters": [
    {"name": name, "in": "query", "required": False, "schema": schema} for name, schema in (
        ("meeting_id", {"type": "string"}), ("page_no", {"type": "number"}), ("per_page", {"type": "number"}),
        ("status", {"type": "array", "items": {"type": "string", "enum": list(_STATUSES)}}),
        ("sort_by", {"type": "string"}), ("sort_order", {"type": "string", "enum": ["ASC", "DESC"]}),
        ("start_time", {"type": "string", "format": "date-time"}),
        ("end_time", {"type": "string", "format": "date-time"}))]}


def _parse_time(value: str, field: str) -> int:
    """Unix ns of an ISO 8601 time (naive = UTC).

    Raises:
        EgressError: ``invalid_argument`` naming ``field`` for anything else, or a time int64 ns cannot
            hold (before 1677 or after 2262).
    """
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        ns = int((t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp() * 1e9)
    except (ValueError, OverflowError):
        raise invalid(field, f"must be an ISO 8601 time, got {value[:64]!r}") from None
    if not _NS_RANGE[0] <= ns <= _NS_RANGE[1]:
        raise invalid(field, "must be a time from 1677 to 2262")
    return ns


def _page_number(raw: str, name: str, default: int, top: int) -> int:
    """A paging parameter: a whole number from 1 to ``top`` (the cloudflare SDK sends floats such as ``2.0``).

    Raises:
        EgressError: ``invalid_argument`` naming ``name``.
    """
    try:
        value = float(raw) if raw else float(default)
    except ValueError:
        raise invalid(name, f"must be a number, got {raw[:32]!r}") from None
    if not math.isfinite(value) or not 1 <= value <= top:
        raise invalid(name, f"must be a number from 1 to {top}")
    return int(value)


def realtimekit_router(recordings: RealtimeKitRecordings, api_key: str, api_secret: str) -> APIRouter:
    """The recordings resource on both path prefixes, over the dialect service ``recordings``."""
    router = APIRouter(tags=["Cloudflare RealtimeKit recordings"])
    authorized = Depends(Authorizer(api_key, api_secret, identity=True))

    def render(row: RealtimeKitRecording) -> dict:
        """RealtimeKit's recording object (SDK ``RecordingGetOneRecordingResponse.Data``); never secrets."""
        data = {"id": row.id, "invoked_time": iso_ms(row.invoked_at), "output_file_name": row.output_file_name,
                "status": row.status, "session_id": row.session_id or None,
                "started_time": iso_ms(row.started_at), "stopped_time": iso_ms(row.stopped_at),
                "recording_duration": round(row.duration_s) if row.duration_s is not None else None,
                "file_size": row.file_size, **recordings.download_urls(row), "start_reason": row.start_reason,
                "stop_reason": row.stop_reason, "storage_config": row.storage}
        data["download_url_expiry"] = iso_ms(data["download_url_expiry"])
        return data

    async def parse(request: Request, model: type[BaseModel]) -> BaseModel:
        try:  # lone surrogates pass here: the models refuse them naming the field
            body = json.loads(await request.body() or b"{}")
        except ValueError as e:  # UnicodeDecodeError too
            raise EgressError("malformed", f"the body is not JSON: {e}") from None
        except RecursionError:
            raise EgressError("malformed", "the body is not JSON pyegress takes: nested too deeply") from None
        try:
            parsed = model.model_validate(body)
        except ValidationError as e:
            first = e.errors()[0]
            field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"]).lstrip(".") or "body"
            raise EgressError("invalid_argument", f"{field}: {first['msg']}", argument=field) from None
        # the meeting's name becomes a directory of the files' keys
        if (why := safe_room_name(getattr(parsed, "meeting_id", "x"))) is not None:
            raise EgressError("invalid_argument", f"meeting_id: {why}", argument="meeting_id")
        return parsed

    def ok(data, **extra) -> JSONResponse:
        return JSONResponse({"success": True, "data": data, **extra})

    async def start_composite(request: Request, account_id: str, app_id: str, caller: Caller = authorized):
        req = await parse(request, CompositeStart)
        caller.check_room(req.meeting_id, "meeting_id")
        row = await recordings.start_composite(caller.identity, account_id, app_id, req)
        return ok(render(row))

    async def start_track(request: Request, account_id: str, app_id: str, caller: Caller = authorized):
        req = await parse(request, TrackStart)
        caller.check_room(req.meeting_id, "meeting_id")
        row = await recordings.start_track(caller.identity, account_id, app_id, req)
        return ok({"recording": render(row)})

    async def list_recordings(request: Request, account_id: str, app_id: str, caller: Caller = authorized):
        q = request.query_params
        statuses = q.getlist("status")
        for s in statuses:
            if s not in _STATUSES:
                raise EgressError("invalid_argument", f"status: unknown status {s!r}", argument="status")
        numbers = {name: _page_number(q.get(name, ""), name, default, top) for name, default, top in _PAGING}
        meeting_id = q.get("meeting_id", "") or caller.room
        caller.check_room(meeting_id, "meeting_id")
        if q.get("sort_by", "invokedTime") != "invokedTime":
            raise EgressError("invalid_argument", "sort_by: only invokedTime", argument="sort_by")
        order = q.get("sort_order", "DESC")
        if order not in ("ASC", "DESC"):
            raise EgressError("invalid_argument", "sort_order: ASC or DESC", argument="sort_order")
        offset = (numbers["page_no"] - 1) * numbers["per_page"]
        rows, total = recordings.query(
            caller.identity, account_id, app_id, meeting_id=meeting_id,
            statuses=statuses, descending=order == "DESC", offset=offset, limit=numbers["per_page"],
            invoked_from=_parse_time(q["start_time"], "start_time") if "start_time" in q else None,
            invoked_to=_parse_time(q["end_time"], "end_time") if "end_time" in q else None)
        # offsets are 1-based and inclusive: items start_offset..end_offset of total_count
        paging = {"start_offset": offset + 1 if rows else 0, "end_offset": offset + len(rows), "total_count": total}
        return ok([render(r) for r in rows], paging=paging)

    def own(caller: Caller, account_id: str, app_id: str, recording_id: str) -> RealtimeKitRecording:
        row = recordings.get(caller.identity, account_id, app_id, recording_id)
        caller.check_room(row.meeting_id, "recording_id")
        return row

    async def get_one(account_id: str, app_id: str, recording_id: str, caller: Caller = authorized):
        return ok(render(own(caller, account_id, app_id, recording_id)))

    async def get_active(account_id: str, app_id: str, meeting_id: str, caller: Caller = authorized):
        caller.check_room(meeting_id, "meeting_id")
        return ok(render(recordings.active(caller.identity, account_id, app_id, meeting_id)))

    async def act(request: Request, account_id: str, app_id: str, recording_id: str, caller: Caller = authorized):
        action = await parse(request, Action)
        own(caller, account_id, app_id, recording_id)
        row = await recordings.act(caller.identity, account_id, app_id, recording_id, action.action)
        return ok(render(row))

    routes = [("POST", "/recordings", start_composite, openapi_body(CompositeStart)),
              ("POST", "/recordings/track", start_track, openapi_body(TrackStart)),
              ("GET", "/recordings", list_recordings, _LIST_PARAMETERS),
              ("GET", "/recordings/active-recording/{meeting_id}", get_active, None),
              ("GET", "/recordings/{recording_id}", get_one, None),
              ("PUT", "/recordings/{recording_id}", act, openapi_body(Action))]
    for prefix in PREFIXES:
        for method, path, handler, extra in routes:
            router.add_api_route(prefix + KIT + path, handler, methods=[method], openapi_extra=extra,
                                 include_in_schema=prefix == "")
    return router
