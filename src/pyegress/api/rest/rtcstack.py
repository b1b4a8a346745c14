"""RTCstack's recording API (seed 002): one composite MP4 recording per room.

``POST /v1/rooms/{roomId}/recording/start`` starts a 1280x720 30 fps grid room
composite to ``{roomId}/{timestamp}.mp4`` (``2024-04-21T10-00-00``, UTC) in
the default storage, or returns the room's running recording (the call is
idempotent); ``POST .../recording/stop`` stops it; ``GET .../recording`` says
whether the room is being recorded. When a recording ends, RTCstack's own
``egress_ended`` webhook (``event, egressId, roomId, file, duration`` in s,
``size`` in bytes) goes to ``PYEGRESS_RTCSTACK_WEBHOOK_URLS``.

Calls carry a LiveKit access token with the ``roomRecord`` grant, as the
Egress API does (:class:`~pyegress.api.auth.Authorizer`; a token naming a room
acts on that room only): RTCstack's API is a server-side wrapper of LiveKit
Egress. The room ID is the LiveKit room name.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from livekit.protocol import egress as eg

from ...errors import EgressError
from ...service.egress_service import EgressService
from ...database.egress_store import ACTIVE_STATUSES
from ...webhooks.sender import WebhookSender
from ..auth import Authorizer, Caller
from . import error, from_egress_error, iso_ms, safe_room_name

S = eg.EgressStatus
#: Seed 002's status words for an egress still running.
STATUS_WORDS = {S.EGRESS_STARTING: "starting", S.EGRESS_ACTIVE: "active", S.EGRESS_ENDING: "stopping"}
_FIELDS = {"room_name": "roomId"}
_ERRORS = {401: {"description": "missing or invalid access token"}, 403: {"description": "no roomRecord grant"}}


def _example(body: dict) -> dict:
    """An OpenAPI 200 response with the seed's example body."""
    return {200: {"content": {"application/json": {"example": body}}}}


@dataclass
class _Started:
    room_id: str
    requested_ns: int  # when start was called: startedAt until the egress reports its own start


def rtcstack_router(service: EgressService, api_key: str, api_secret: str, webhooks: WebhookSender,
                    webhook_urls: list[str]) -> APIRouter:
    """The RTCstack routes on ``service``; ``egress_ended`` webhooks go to ``webhook_urls`` through ``webhooks``.

    Which egress records a room is kept in memory: an egress never outlives
    the process that runs it (a restart marks it failed), so neither does this.
    """
    router = APIRouter(prefix="/v1/rooms/{roomId}/recording", tags=["RTCstack recording (seed 002)"])
    started: dict[str, _Started] = {}  # egress ID -> its room
    by_room: dict[str, str] = {}  # room ID -> egress ID of its latest recording
    start_lock = asyncio.Lock()  # two concurrent starts must still give one recording

    def active(room_id: str) -> eg.EgressInfo | None:
        egress_id = by_room.get(room_id)
        info = service.store.get(egress_id) if egress_id else None
        return info if info is not None and info.status in ACTIVE_STATUSES else None

    def started_at(info: eg.EgressInfo) -> str | None:
        return iso_ms(info.started_at or started[info.egress_id].requested_ns)

    authorized = Depends(Authorizer(api_key, api_secret))

    def check(caller: Caller, room_id: str) -> JSONResponse | None:
        if problem := safe_room_name(room_id):
            return error(400, f"roomId: {problem}", "roomId")
        caller.check_room(room_id, "roomId")
        return None

    @router.post("/start", responses={**_ERRORS, **_example(
        {"egressId": "EG_abc123", "status": "starting", "startedAt": "2024-04-21T10:00:00.000Z"})})
    async def start(roomId: str, caller: Caller = authorized) -> JSONResponse:  # noqa: N803 (the seed's name)
        """Start recording the room, or return its running recording: ``{egressId, status, startedAt}``."""
        if (denied := check(caller, roomId)) is not None:
            return denied
        async with start_lock:
            info = active(roomId)
            if info is None:
                stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H-%M-%S")
                # No encoding options: LiveKit's default H264_720P_30, the seed's 1280x720 at 30 fps.
                req = eg.RoomCompositeEgressRequest(room_name=roomId, layout="grid", file_outputs=[
                    eg.EncodedFileOutput(file_type=eg.EncodedFileType.MP4, filepath=f"{{room_name}}/{stamp}.mp4",
                                         disable_manifest=True)])
                requested = time.time_ns()
                try:
                    info = await service.start_room_composite(req)
                except EgressError as e:
                    return from_egress_error(e, _FIELDS)
                started[info.egress_id] = _Started(roomId, requested)
                by_room[roomId] = info.egress_id
        return JSONResponse({"egressId": info.egress_id, "status": STATUS_WORDS.get(info.status, "starting"),
                             "startedAt": started_at(info)})

    @router.post("/stop", responses={**_ERRORS, 404: {"description": "the room is not being recorded"},
                                     **_example({"egressId": "EG_abc123", "status": "stopping"})})
    async def stop(roomId: str, caller: Caller = authorized) -> JSONResponse:  # noqa: N803
        """Stop the room's recording: ``{egressId, status: "stopping"}``; the file is complete when the
        ``egress_ended`` webhook fires."""
        if (denied := check(caller, roomId)) is not None:
            return denied
        info = active(roomId)
        if info is None:
            return error(404, f"room {roomId!r} is not being recorded")
        try:
            info = await service.stop_egress(eg.StopEgressRequest(egress_id=info.egress_id))
        except EgressError as e:  # it ended between the lookup and the stop
            return from_egress_error(e, _FIELDS)
        return JSONResponse({"egressId": info.egress_id, "status": "stopping"})

    @router.get("", responses={**_ERRORS, **_example(
        {"active": True, "egressId": "EG_abc123", "startedAt": "2024-04-21T10:00:00.000Z"})})
    async def status(roomId: str, caller: Caller = authorized) -> JSONResponse:  # noqa: N803
        """``{active: true, egressId, startedAt}`` while the room is recorded, else ``{active: false}``."""
        if (denied := check(caller, roomId)) is not None:
            return denied
        info = active(roomId)
        if info is None:
            return JSONResponse({"active": False})
        return JSONResponse({"active": True, "egressId": info.egress_id, "startedAt": started_at(info)})

    def on_egress(info: eg.EgressInfo) -> None:
        """Seed 002's ``egress_ended`` webhook once one of our recordings has ended, whatever the outcome."""
        if info.status in ACTIVE_STATUSES or info.egress_id not in started:
            return
        room_id = started.pop(info.egress_id).room_id
        if by_room.get(room_id) == info.egress_id:
            del by_room[room_id]
        file = info.file_results[0] if info.file_results else None
        payload = {"event": "egress_ended", "egressId": info.egress_id, "roomId": room_id,
                   "file": file.filename if file else None,
                   "duration": round(file.duration / 1e9, 3) if file else 0,
                   "size": file.size if file else 0}
        if info.status not in (S.EGRESS_COMPLETE, S.EGRESS_LIMIT_REACHED):
            payload["error"] = info.error or S.Name(info.status)
        webhooks.enqueue_json("egress_ended", info.egress_id, payload, webhook_urls)

    service.add_listener(on_egress)
    return router
