"""LiveKit's Egress service over Twirp: ``POST /twirp/livekit.Egress/<Method>``.

Both encodings are served and the reply uses the request's (COMPAT.md): binary
protobuf (``application/protobuf``, Python ``livekit-api``) and proto3 JSON
(``application/json``, Node ``livekit-server-sdk``, curl). Errors are Twirp's
JSON ``{"code", "msg", "meta"}`` with ``Content-Type: application/json`` and
the Twirp status mapping (twitchtv/twirp PROTOCOL.md).
"""

from __future__ import annotations

from typing import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from livekit.protocol import egress as eg

from ..errors import EgressError
from ..service.egress_service import EgressService
from .auth import verify_room_record

PROTOBUF_TYPES = ("application/protobuf", "application/x-protobuf")


def twirp_error(err: EgressError) -> JSONResponse:
    return JSONResponse({"code": err.code, "msg": err.msg, "meta": err.meta}, status_code=err.http_status)


def decode(body: bytes, content_type: str, cls: type[Message]) -> tuple[Message, bool]:
    """Parse a request body; returns ``(message, is_json)``.

    Raises:
        EgressError: ``malformed`` for an undecodable body, ``bad_route`` for
            an unsupported Content-Type.
    """
    ctype = content_type.split(";")[0].strip().lower()
    if ctype in PROTOBUF_TYPES:
        try:
            return cls.FromString(body), False
        except DecodeError as e:
            raise EgressError("malformed", f"the body is not a valid {cls.DESCRIPTOR.full_name}: {e}") from None
    if ctype == "application/json":
        try:
            return json_format.Parse(body or b"{}", cls(), ignore_unknown_fields=True), True
        except (json_format.ParseError, UnicodeDecodeError) as e:
            raise EgressError("malformed", f"the JSON body is not a valid {cls.DESCRIPTOR.full_name}: {e}") from None
    raise EgressError("bad_route", f"unsupported Content-Type {content_type!r}; "
                      "use application/protobuf or application/json")


def encode(reply: Message, as_json: bool) -> Response:
    """Status 200 with the reply in the request's encoding (snake_case JSON, int64 as strings)."""
    if as_json:
        body = json_format.MessageToJson(reply, preserving_proto_field_name=True,
                                         always_print_fields_with_no_presence=True, indent=None)
        return Response(body, media_type="application/json")
    return Response(reply.SerializeToString(), media_type="application/protobuf")


def egress_router(service: EgressService, api_key: str, api_secret: str) -> APIRouter:
    """The Twirp routes of ``livekit.Egress``, all under the ``roomRecord`` grant."""
    methods: dict[str, tuple[type[Message], Callable[[Message], Awaitable[Message]]]] = {
        "StartRoomCompositeEgress": (eg.RoomCompositeEgressRequest, service.start_room_composite),
        "StartParticipantEgress": (eg.ParticipantEgressRequest, service.start_participant),
        "StartTrackCompositeEgress": (eg.TrackCompositeEgressRequest, service.start_track_composite),
        "StartTrackEgress": (eg.TrackEgressRequest, service.start_track),
        "StartWebEgress": (eg.WebEgressRequest, service.start_web),
        "StartEgress": (eg.StartEgressRequest, service.start_egress),
        "ListEgress": (eg.ListEgressRequest, service.list_egress),
        "StopEgress": (eg.StopEgressRequest, service.stop_egress),
        "UpdateLayout": (eg.UpdateLayoutRequest, service.update_layout),
        "UpdateStream": (eg.UpdateStreamRequest, service.update_stream),
    }
    known = {m.name for m in eg.DESCRIPTOR.services_by_name["Egress"].methods}
    router = APIRouter()

    @router.post("/twirp/livekit.Egress/{method}")
    async def call(method: str, request: Request) -> Response:
        try:
            verify_room_record(request.headers.get("authorization"), api_key, api_secret)
            if method not in methods:
                if method in known:
                    raise EgressError("unimplemented", f"livekit.Egress/{method} is not implemented yet")
                raise EgressError("bad_route", f"no such method livekit.Egress/{method}")
            cls, handler = methods[method]
            req, as_json = decode(await request.body(), request.headers.get("content-type", ""), cls)
            return encode(await handler(req), as_json)
        except EgressError as e:
            return twirp_error(e)

    return router
