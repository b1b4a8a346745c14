"""RTCstack's recording API over HTTP (docs/wire.md, "RTCstack recording API"): one composite MP4
recording per room, kept by the dialect service :class:`~pyegress.dialects.rtcstack.RtcstackRecordings`.

``POST /v1/rooms/{roomId}/recording/start`` starts the room's recording or returns its running one
``{egressId, status, startedAt}``; ``POST .../recording/stop`` stops it ``{egressId, status: "stopping"}``;
``GET .../recording`` says whether the room is being recorded. Calls carry a LiveKit access token with the
``roomRecord`` grant, as the Egress API does (:class:`~pyegress.api.auth.Authorizer`; a token naming a room
acts on that room only): RTCstack's API is a server-side wrapper of LiveKit Egress. Errors are
``{"error", "field"}`` (:func:`pyegress.api.errors.rtcstack_error`).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from livekit.protocol import egress as eg

from ...dialects.rtcstack import RtcstackRecordings
from ...errors import invalid
from ..auth import Authorizer, Caller
from . import iso_ms, safe_room_name

S = eg.EgressStatus
#: RTCstack's status words for an egress still running.
STATUS_WORDS = {S.EGRESS_STARTING: "starting", S.EGRESS_ACTIVE: "active", S.EGRESS_ENDING: "stopping"}
_ERRORS = {401: {"description": "missing or invalid access token"}, 403: {"description": "no roomRecord grant"}}


def _example(body: dict) -> dict:
    """An OpenAPI 200 response with RTCstack's example body."""
    return {200: {"content": {"application/json": {"example": body}}}}


def rtcstack_router(recordings: RtcstackRecordings, api_key: str, api_secret: str) -> APIRouter:
    """The RTCstack routes over the dialect service ``recordings``."""
    router = APIRouter(prefix="/v1/rooms/{roomId}/recording", tags=["RTCstack recording"])
    authorized = Depends(Authorizer(api_key, api_secret))

    def check(caller: Caller, room_id: str) -> None:
        if problem := safe_room_name(room_id):
            raise invalid("roomId", problem)
        caller.check_room(room_id, "roomId")

    @router.post("/start", responses={**_ERRORS, **_example(
        {"egressId": "EG_abc123", "status": "starting", "startedAt": "2024-04-21T10:00:00.000Z"})})
    async def start(roomId: str, caller: Caller = authorized) -> JSONResponse:  # noqa: N803 (RTCstack's name)
        """Start recording the room, or return its running recording: ``{egressId, status, startedAt}``."""
        check(caller, roomId)
        info = await recordings.start(roomId)
        return JSONResponse({"egressId": info.egress_id, "status": STATUS_WORDS.get(info.status, "starting"),
                             "startedAt": iso_ms(recordings.started_at(info))})

    @router.post("/stop", responses={**_ERRORS, 404: {"description": "the room is not being recorded"},
                                     **_example({"egressId": "EG_abc123", "status": "stopping"})})
    async def stop(roomId: str, caller: Caller = authorized) -> JSONResponse:  # noqa: N803
        """Stop the room's recording: ``{egressId, status: "stopping"}``; the file is complete when the
        ``egress_ended`` webhook fires."""
        check(caller, roomId)
        info = await recordings.stop(roomId)
        return JSONResponse({"egressId": info.egress_id, "status": "stopping"})

    @router.get("", responses={**_ERRORS, **_example(
        {"active": True, "egressId": "EG_abc123", "startedAt": "2024-04-21T10:00:00.000Z"})})
    async def status(roomId: str, caller: Caller = authorized) -> JSONResponse:  # noqa: N803
        """``{active: true, egressId, startedAt}`` while the room is recorded, else ``{active: false}``."""
        check(caller, roomId)
        info = recordings.active(roomId)
        if info is None:
            return JSONResponse({"active": False})
        return JSONResponse({"active": True, "egressId": info.egress_id,
                             "startedAt": iso_ms(recordings.started_at(info))})

    return router
