"""Cloudflare RealtimeKit's recordings resource over HTTP (COMPAT.md, seed 004).

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

Auth is ``Authorization: Bearer <LiveKit JWT>``; the token's identity is the
user (:func:`~pyegress.api.auth.bearer_user`). Errors are RealtimeKit's
``{"success": false, "error": {"code": <HTTP status>, "message", "field"?}}``:
400 malformed JSON or a state conflict, 401 auth, 404 unknown (or another
user's) recording, 422 an invalid field. 409 is avoided: the SDK retries it.
A finished file's ``download_url`` (valid :data:`DOWNLOAD_TTL_S`, as
RealtimeKit's bucket links) is a signed pyegress ``/downloads/`` URL for a file
on local disk, or a presigned URL of pyegress's default storage.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from datetime import datetime, timezone

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from ...errors import EgressError
from ...service.realtimekit import Action, CompositeStart, RealtimeKitRecordings, TrackStart
from ...storage import StorageTarget
from ...store.realtimekit_store import RealtimeKitRecording
from ..auth import bearer_user
from . import iso_ms, safe_room_name
from .downloads import signed_url

log = logging.getLogger(__name__)

KIT = "/accounts/{account_id}/realtime/kit/{app_id}"
PREFIXES = ("/client/v4", "")
DOWNLOAD_TTL_S = 7 * 24 * 3600  # RealtimeKit: "bucket download URLs expire after seven days"
_STATUS = {"invalid_argument": 422, "unimplemented": 422, "malformed": 400, "failed_precondition": 400,
           "already_exists": 400, "aborted": 400, "out_of_range": 422}
_STATUSES = ("INVOKED", "RECORDING", "UPLOADING", "UPLOADED", "ERRORED", "PAUSED")
_FIELD_NAMES = {"room_name": "meeting_id"}  # EgressService names LiveKit's fields


def error_reply(status: int, message: str, field: str = "") -> JSONResponse:
    """RealtimeKit's error body; ``field`` names the offending request field."""
    error = {"code": status, "message": message} | ({"field": field} if field else {})
    return JSONResponse({"success": False, "error": error}, status_code=status)


def _from_egress_error(e: EgressError) -> JSONResponse:
    field = e.meta.get("argument") or ("meeting_id" if "room_name" in e.meta else "")
    return error_reply(_STATUS.get(e.code, e.http_status), e.msg, _FIELD_NAMES.get(field, field))


def _parse_time(value: str, field: str) -> int:
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise EgressError("invalid_argument", f"{field}: must be an ISO 8601 time, got {value!r}",
                          argument=field) from None
    return int((t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp() * 1e9)


def realtimekit_router(recordings: RealtimeKitRecordings, api_key: str, api_secret: str,
                       default_storage: StorageTarget | None) -> APIRouter:
    """The recordings resource on both path prefixes; ``default_storage`` is where REALTIMEKIT_BUCKET files
    are uploaded (it presigns their download URLs), None when they stay on local disk."""
    router = APIRouter(tags=["Cloudflare RealtimeKit recordings"])

    def download_url(request: Request, f: dict, own_storage: bool) -> str | None:
        """A URL for one finished file (``{"filename", "location"}``), or None if pyegress cannot give one."""
        if "://" not in f["location"]:  # on local disk: no upload, or the backup of a failed one
            return signed_url(str(request.base_url), api_secret, f["filename"], DOWNLOAD_TTL_S)
        if own_storage or default_storage is None:  # the caller's own bucket: no link from pyegress
            return None
        try:
            return default_storage.presign(f["filename"], DOWNLOAD_TTL_S)
        except Exception as e:  # credentials that cannot sign: the recording is still shown, without a URL
            log.warning("cannot presign %s: %s", f["filename"], e)
            return None

    def render(row: RealtimeKitRecording, request: Request) -> dict:
        """RealtimeKit's recording object (SDK ``RecordingGetOneRecordingResponse.Data``); never secrets."""
        data = {"id": row.id, "invoked_time": iso_ms(row.invoked_at), "output_file_name": row.output_file_name,
                "status": row.status, "session_id": row.session_id or None,
                "started_time": iso_ms(row.started_at), "stopped_time": iso_ms(row.stopped_at),
                "recording_duration": round(row.duration_s) if row.duration_s is not None else None,
                "file_size": row.file_size, "download_url": None, "audio_download_url": None,
                "download_url_expiry": None, "start_reason": row.start_reason, "stop_reason": row.stop_reason,
                "storage_config": row.storage}
        if row.status == "UPLOADED" and row.bucket_download:
            for f in row.files:
                key = "audio_download_url" if f["role"] == "audio" else "download_url"
                if data[key] is None and (url := download_url(request, f, row.storage is not None)):
                    data[key] = url
                    data["download_url_expiry"] = iso_ms(time.time_ns() + DOWNLOAD_TTL_S * 10**9)
        return data

    async def parse(request: Request, model: type[BaseModel]) -> BaseModel:
        try:
            body = json.loads(await request.body() or b"{}")
        except (ValueError, UnicodeDecodeError) as e:
            raise EgressError("malformed", f"the body is not JSON: {e}") from None
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

    def user_of(request: Request) -> str:
        return bearer_user(request.headers.get("authorization"), api_key, api_secret)

    def ok(data, **extra) -> JSONResponse:
        return JSONResponse({"success": True, "data": data, **extra})

    async def start_composite(request: Request, account_id: str, app_id: str):
        user = user_of(request)
        row = await recordings.start_composite(user, account_id, app_id, await parse(request, CompositeStart))
        return ok(render(row, request))

    async def start_track(request: Request, account_id: str, app_id: str):
        user = user_of(request)
        row = await recordings.start_track(user, account_id, app_id, await parse(request, TrackStart))
        return ok({"recording": render(row, request)})

    async def list_recordings(request: Request, account_id: str, app_id: str):
        user = user_of(request)
        q = request.query_params
        statuses = q.getlist("status")
        for s in statuses:
            if s not in _STATUSES:
                raise EgressError("invalid_argument", f"status: unknown status {s!r}", argument="status")
        numbers = {}
        for name, default, top in (("page_no", 1, None), ("per_page", 20, 100)):
            raw = q.get(name, str(default))
            try:
                numbers[name] = int(float(raw))
            except ValueError:
                raise EgressError("invalid_argument", f"{name}: must be a number, got {raw!r}",
                                  argument=name) from None
            if numbers[name] < 1 or (top and numbers[name] > top):
                raise EgressError("invalid_argument", f"{name}: must be 1{f' to {top}' if top else ' or more'}",
                                  argument=name)
        if q.get("sort_by", "invokedTime") != "invokedTime":
            raise EgressError("invalid_argument", "sort_by: only invokedTime", argument="sort_by")
        order = q.get("sort_order", "DESC")
        if order not in ("ASC", "DESC"):
            raise EgressError("invalid_argument", "sort_order: ASC or DESC", argument="sort_order")
        offset = (numbers["page_no"] - 1) * numbers["per_page"]
        rows, total = recordings.store.query(
            user=user, account_id=account_id, app_id=app_id, meeting_id=q.get("meeting_id", ""),
            statuses=statuses, descending=order == "DESC", offset=offset, limit=numbers["per_page"],
            invoked_from=_parse_time(q["start_time"], "start_time") if "start_time" in q else None,
            invoked_to=_parse_time(q["end_time"], "end_time") if "end_time" in q else None)
        # offsets are 1-based and inclusive: items start_offset..end_offset of total_count
        paging = {"start_offset": offset + 1 if rows else 0, "end_offset": offset + len(rows), "total_count": total}
        return ok([render(r, request) for r in rows], paging=paging)

    async def get_one(request: Request, account_id: str, app_id: str, recording_id: str):
        row = recordings.get(user_of(request), account_id, app_id, recording_id)
        return ok(render(row, request))

    async def get_active(request: Request, account_id: str, app_id: str, meeting_id: str):
        row = recordings.active(user_of(request), account_id, app_id, meeting_id)
        return ok(render(row, request))

    async def act(request: Request, account_id: str, app_id: str, recording_id: str):
        user = user_of(request)
        action = await parse(request, Action)
        row = await recordings.act(user, account_id, app_id, recording_id, action.action)
        return ok(render(row, request))

    def guarded(handler):
        @functools.wraps(handler)  # FastAPI reads the path parameters from the wrapped signature
        async def run(request: Request, **params):
            try:
                return await handler(request, **params)
            except EgressError as e:
                return _from_egress_error(e)
        return run

    routes = [("POST", "/recordings", start_composite), ("POST", "/recordings/track", start_track),
              ("GET", "/recordings", list_recordings),
              ("GET", "/recordings/active-recording/{meeting_id}", get_active),
              ("GET", "/recordings/{recording_id}", get_one), ("PUT", "/recordings/{recording_id}", act)]
    for prefix in PREFIXES:
        for method, path, handler in routes:
            router.add_api_route(prefix + KIT + path, guarded(handler), methods=[method],
                                 include_in_schema=prefix == "")
    return router
