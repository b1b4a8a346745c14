"""How each API dialect says no: one error renderer per dialect, chosen by the request's path, and the
app-wide handlers that send every failure a request can cause through it.

A route raises :class:`~pyegress.errors.EgressError` (or lets a parsing error escape); whatever escapes
is answered here in the dialect of the path, so no route answers FastAPI's ``{"detail": ...}`` or
a 500 for bad input:

- ``EgressError``: its code and message, ``meta.argument`` as the field;
- Starlette's HTTP errors (no such route, wrong method, body too large): that status; on Twirp every
  unroutable request is ``bad_route`` (404), as twitchtv/twirp PROTOCOL.md has it;
- FastAPI's request validation: ``malformed`` naming the parameter;
- ``ValueError`` (JSON, pydantic, Unicode), ``OverflowError``, ``RecursionError``: ``malformed`` 400.
  These come from decoding what the client sent; the service validates its own state otherwise,
  so one of them reaching here is a request the dialect failed to check, logged with its traceback;
- anything else: ``internal`` 500, logged, never a traceback on the wire.
"""

from __future__ import annotations

import logging
from typing import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import EgressError

log = logging.getLogger(__name__)

TWIRP_PREFIX = "/twirp/"
REALTIMEKIT_PREFIXES = ("/client/v4/accounts/", "/accounts/")
RECORDINGS_PREFIX = "/api/video/recordings"
RTCSTACK_PREFIX = "/v1/rooms/"
#: Exceptions that decoding a request raises on bad input (UnicodeError and pydantic's ValidationError
#: are ValueErrors; deep JSON nesting raises RecursionError; huge numbers OverflowError).
REQUEST_ERRORS = (ValueError, OverflowError, RecursionError)
#: RealtimeKit's statuses for service error codes (400 malformed/conflict, 422 an invalid field; 409 is
#: avoided because the cloudflare SDK retries it).
REALTIMEKIT_STATUS = {"invalid_argument": 422, "unimplemented": 422, "malformed": 400, "failed_precondition": 400,
                      "already_exists": 400, "aborted": 400, "out_of_range": 422}
#: Each dialect's names for the service's (LiveKit's) field names.
REALTIMEKIT_FIELDS = {"room_name": "meeting_id"}
RTCSTACK_FIELDS = {"room_name": "roomId"}
RECORDINGS_FIELDS = {"room_name": "roomName", "track_id": "trackSid"}

Renderer = Callable[[EgressError, "int | None"], JSONResponse]


def text(value: str) -> str:
    """``value`` safe to send as UTF-8 JSON: messages quote what a client sent, lone surrogates included."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _field(e: EgressError) -> str:
    return text(e.meta.get("argument", ""))


def twirp_error(e: EgressError, status: int | None = None) -> JSONResponse:
    """Twirp's ``{"code", "msg", "meta"}``; the status is the code's (Twirp spec v7) unless given
    (413 for a body over the limit, which Twirp has no code for: ``resource_exhausted``)."""
    if e.code == "bad_route":
        status = 404
    meta = {k: text(v) for k, v in e.meta.items()}
    return JSONResponse({"code": e.code, "msg": text(e.msg), "meta": meta}, status_code=status or e.http_status)


def renamed(e: EgressError, fields: dict[str, str]) -> EgressError:
    """``e`` in a dialect's words: ``fields`` renames the service's field (``meta.argument``, or ``room_name``
    for the service's "no such room") in ``argument`` and at the front of the message."""
    service_field = e.meta.get("argument") or ("room_name" if "room_name" in e.meta else "")
    if not service_field:
        return e
    field = fields.get(service_field, service_field)
    msg = e.msg
    if msg.startswith(f"{service_field}:"):
        msg = f"{field}:{msg[len(service_field) + 1:]}"
    return EgressError(e.code, msg, argument=field)


def rest_error(e: EgressError, status: int | None = None) -> JSONResponse:
    """``{"error": message}`` with ``field`` naming the offending input (downloads, any other path;
    docs/wire.md)."""
    body = {"error": text(e.msg)} | ({"field": _field(e)} if _field(e) else {})
    return JSONResponse(body, status_code=status or e.http_status)


def rtcstack_error(e: EgressError, status: int | None = None) -> JSONResponse:
    """RTCstack: :func:`rest_error` naming its fields (``roomId``)."""
    return rest_error(renamed(e, RTCSTACK_FIELDS), status)


def recordings_error(e: EgressError, status: int | None = None) -> JSONResponse:
    """The recordings API (docs/wire.md): ``{"error": "Unauthorized", "detail"}`` for a bad token, else
    :func:`rest_error` naming its fields (``roomName``, ``trackSid``)."""
    if e.code == "unauthenticated":
        return JSONResponse({"error": "Unauthorized", "detail": text(e.msg)}, status_code=401)
    return rest_error(renamed(e, RECORDINGS_FIELDS), status)


def realtimekit_error(e: EgressError, status: int | None = None) -> JSONResponse:
    """RealtimeKit's ``{"success": false, "error": {"code": <HTTP status>, "message", "field"?}}``."""
    status = status or REALTIMEKIT_STATUS.get(e.code, e.http_status)
    field = _field(e) or ("room_name" if "room_name" in e.meta else "")  # the service's "no such room"
    field = REALTIMEKIT_FIELDS.get(field, field)
    error = {"code": status, "message": text(e.msg)} | ({"field": field} if field else {})
    return JSONResponse({"success": False, "error": error}, status_code=status)


def renderer_for(path: str) -> Renderer:
    """The error renderer of the dialect that serves ``path``."""
    if path.startswith(TWIRP_PREFIX):
        return twirp_error
    if path.startswith(REALTIMEKIT_PREFIXES):
        return realtimekit_error
    if path.startswith(RECORDINGS_PREFIX):
        return recordings_error
    if path.startswith(RTCSTACK_PREFIX):
        return rtcstack_error
    return rest_error


def render(path: str, e: EgressError, status: int | None = None) -> JSONResponse:
    """``e`` as the dialect of ``path`` says it."""
    return renderer_for(path)(e, status)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every exception that escapes a route in the dialect of its path (see the module doc)."""

    @app.exception_handler(EgressError)
    async def egress_error(request: Request, exc: EgressError) -> JSONResponse:
        return render(request.url.path, exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code in (404, 405):
            code, msg = "bad_route", f"no route {request.method} {request.url.path}"
        elif exc.status_code == 413:
            code, msg = "resource_exhausted", str(exc.detail)
        else:
            code, msg = "malformed", str(exc.detail)
        return render(request.url.path, EgressError(code, msg), exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "path", "header", "body")]
        field = ".".join(loc) or "request"
        return render(request.url.path, EgressError("malformed", f"{field}: {first.get('msg', 'invalid')}",
                                                    argument=field), 400)

    async def request_error(request: Request, exc: Exception) -> JSONResponse:
        log.warning("bad input on %s reached the edge unchecked: %s", request.url.path, type(exc).__name__,
                    exc_info=exc)
        return render(request.url.path, EgressError("malformed", f"the request cannot be processed "
                                                    f"({type(exc).__name__})"), 400)

    for cls in REQUEST_ERRORS:
        app.add_exception_handler(cls, request_error)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # Never a traceback on the wire; the log keeps it.
        log.exception("unhandled error on %s", request.url.path)
        return render(request.url.path, EgressError("internal", "internal error"), 500)
