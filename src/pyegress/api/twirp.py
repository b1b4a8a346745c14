"""LiveKit's Egress service over Twirp: ``POST /twirp/livekit.Egress/<Method>``.

Both encodings are served and the reply uses the request's (``docs/wire.md``): binary
protobuf (``application/protobuf``, Python ``livekit-api``) and proto3 JSON
(``application/json``, Node ``livekit-server-sdk``, curl). Errors are Twirp's
JSON ``{"code", "msg", "meta"}`` with ``Content-Type: application/json`` and
the Twirp status mapping (twitchtv/twirp PROTOCOL.md); unroutable requests are
``bad_route`` (:mod:`pyegress.api.errors`).

Every call is authorized by :class:`~pyegress.api.auth.Authorizer` (``roomRecord``; a token naming a
room acts on that room only) and every decoded request is checked here before the service sees it:
enum fields must hold a value their enum defines (proto3 decoders keep unknown numbers).
"""

from __future__ import annotations

from typing import Awaitable, Callable

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from livekit.protocol import egress as eg

from ..errors import EgressError, invalid
from ..service.egress_service import EgressService
from .auth import Authorizer, Caller

PROTOBUF_TYPES = ("application/protobuf", "application/x-protobuf")
#: The room each Start method acts on (StartWebEgress: none, so a token limited to a room cannot start it).
_START_ROOM: dict[str, Callable[[Message], str]] = {
    "StartRoomCompositeEgress": lambda r: r.room_name, "StartParticipantEgress": lambda r: r.room_name,
    "StartTrackCompositeEgress": lambda r: r.room_name, "StartTrackEgress": lambda r: r.room_name,
    "StartWebEgress": lambda r: "", "StartEgress": lambda r: r.room_name,
}


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


def check_enums(msg: Message, prefix: str = "") -> None:
    """Refuse enum values the enum does not define, anywhere in ``msg`` (both decoders keep them).

    Raises:
        EgressError: ``invalid_argument`` naming the field (``advanced.audio_codec``, ``outputs[0]...``).
    """
    for fd, value in msg.ListFields():
        name = f"{prefix}{fd.name}"
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            value_fd = fd.message_type.fields_by_name["value"]
            items = [(f"{name}[{k!r}]", v) for k, v in value.items()]
            fd = value_fd
        elif fd.is_repeated:
            items = [(f"{name}[{i}]", v) for i, v in enumerate(value)]
        else:
            items = [(name, value)]
        for where, item in items:
            if fd.type == FieldDescriptor.TYPE_ENUM and fd.enum_type.values_by_number.get(item) is None:
                raise invalid(where, f"{item} is not a {fd.enum_type.full_name} value")
            if fd.type == FieldDescriptor.TYPE_MESSAGE:
                check_enums(item, where + ".")


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

    def scope(method: str, req: Message, caller: Caller) -> None:
        """Hold a room-limited token to its room: starts name it, ListEgress is narrowed to it, and an
        existing egress is stopped or changed only if it records it."""
        if not caller.room:
            return
        if method in _START_ROOM:
            caller.check_room(_START_ROOM[method](req), "room_name")
        elif method == "ListEgress":
            caller.check_room(req.room_name or caller.room, "room_name")
            req.room_name = caller.room
        elif (info := service.get_info(req.egress_id)) is not None:
            caller.check_room(info.room_name, "egress_id")

    @router.post("/twirp/livekit.Egress/{method}")
    async def call(method: str, request: Request, caller: Caller = Depends(Authorizer(api_key, api_secret))
                   ) -> Response:
        if method not in methods:
            if method in known:
                raise EgressError("unimplemented", f"livekit.Egress/{method} is not implemented yet")
            raise EgressError("bad_route", f"no such method livekit.Egress/{method}")
        cls, handler = methods[method]
        req, as_json = decode(await request.body(), request.headers.get("content-type", ""), cls)
        check_enums(req)
        scope(method, req, caller)
        return encode(await handler(req), as_json)

    return router
