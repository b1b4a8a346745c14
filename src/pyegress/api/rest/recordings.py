"""The recordings API of the Next.js recordings skill over HTTP (docs/wire.md, "Recordings API"), over the
dialect service :class:`~pyegress.dialects.recordings.Recordings`.

| route | does | reply |
|---|---|---|
| ``POST /api/video/recordings`` | start a room composite, or a track with ``trackBased`` + ``trackSid`` | 201 ``{recordingId, egressId, status}`` |
| ``GET /api/video/recordings?roomName=&limit=`` | the user's recordings, newest first | ``{recordings: [Recording]}`` |
| ``GET /api/video/recordings/{id}`` | one recording and, once completed, a download URL valid 1 h | ``{recording, downloadUrl}`` |
| ``PATCH /api/video/recordings/{id}`` | stop it and wait (up to 30 s) for the file | ``{recordingId, egressId, status, fileUrl, duration}`` |
| ``DELETE /api/video/recordings/{id}`` | stop it if running, delete the file and the row | ``{success: true}`` |

The user is the identity of the ``Authorization: Bearer`` LiveKit token, which needs the ``roomRecord``
grant (:class:`~pyegress.api.auth.Authorizer`; a token naming a room acts on that room's recordings only,
403 otherwise); another user's recording is 404, as an unknown one. Errors are ``{"error": ...}`` with
``field`` naming bad input (400; :func:`pyegress.api.errors.recordings_error`); the skill's 500 for invalid
input is not kept.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from ...database.recordings_store import Recording
from ...dialects.recordings import Recordings, StartRecording
from ...errors import EgressError, invalid
from ..auth import Authorizer, Caller
from . import iso_ms, safe_room_name

MAX_LIST_LIMIT = 1000


def recording_json(row: Recording) -> dict:
    """A row as the skill's Drizzle ``select()`` returns it through ``NextResponse.json``: camelCase keys,
    ISO dates, ``duration`` in s, ``fileSize`` in bytes."""
    return {"id": str(row.id), "roomName": row.room_name, "roomSid": row.room_sid, "egressId": row.egress_id,
            "status": row.status, "layout": row.layout, "codec": row.codec, "resolution": row.resolution,
            "startedAt": iso_ms(row.started_at), "stoppedAt": iso_ms(row.stopped_at), "fileUrl": row.file_url,
            "storageKey": row.storage_key, "fileSize": row.file_size, "duration": row.duration,
            "userId": row.user_id, "createdAt": iso_ms(row.created_at), "updatedAt": iso_ms(row.updated_at)}


def recordings_router(recordings: Recordings, api_key: str, api_secret: str) -> APIRouter:
    """The recordings API's routes over the dialect service ``recordings``."""
    router = APIRouter(prefix="/api/video/recordings", tags=["Recordings API"])
    authorized = Depends(Authorizer(api_key, api_secret, identity=True))

    def find(caller: Caller, recording_id: str) -> Recording:
        row = recordings.find(caller.identity, recording_id)
        caller.check_room(row.room_name, "id")
        return row

    @router.post("", status_code=201, openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": StartRecording.model_json_schema()}}}},
        responses={400: {"description": "invalid body; `field` names the input"}, 401: {}, 404: {}})
    async def start(request: Request, caller: Caller = authorized) -> JSONResponse:
        """Start a composite recording, or a track recording (``trackBased`` with ``trackSid``)."""
        try:
            body = StartRecording.model_validate_json(await request.body())
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "body"
            raise EgressError("invalid_argument", f"{field}: {err['msg']}", argument=field) from None
        if problem := safe_room_name(body.roomName):
            raise invalid("roomName", problem)
        caller.check_room(body.roomName, "roomName")
        row = await recordings.start(caller.identity, body)
        return JSONResponse({"recordingId": str(row.id), "egressId": row.egress_id, "status": row.status},
                            status_code=201)

    @router.get("", responses={400: {}, 401: {}})
    async def list_recordings(roomName: str | None = None, limit: str | None = None,  # noqa: N803
                              caller: Caller = authorized) -> JSONResponse:
        """The user's recordings, newest first; ``limit`` 1-1000, default 50. A token limited to a room
        lists that room's."""
        count = 50
        if limit is not None:
            # length first: int() refuses (ValueError) strings of more than 4300 digits
            if not (limit.isascii() and limit.isdigit() and len(limit) <= 4) or not 1 <= int(limit) <= MAX_LIST_LIMIT:
                raise invalid("limit", f"must be an integer from 1 to {MAX_LIST_LIMIT}")
            count = int(limit)
        caller.check_room(roomName or caller.room, "roomName")
        rows = recordings.list(caller.identity, roomName or caller.room, count)
        return JSONResponse({"recordings": [recording_json(r) for r in rows]})

    @router.get("/{id}", responses={401: {}, 404: {}})
    async def get_recording(id: str, caller: Caller = authorized) -> JSONResponse:  # noqa: A002 (the skill's name)
        """The recording, and for a completed one a download URL valid for 1 h."""
        row = find(caller, id)
        return JSONResponse({"recording": recording_json(row), "downloadUrl": recordings.download_url(row)})

    @router.patch("/{id}", responses={401: {}, 404: {}, 409: {"description": "the recording has ended"}})
    async def stop(id: str, caller: Caller = authorized) -> JSONResponse:  # noqa: A002
        """Stop the recording; answers when the file is complete (or after 30 s, still ``stopping``)."""
        row = await recordings.stop(find(caller, id))
        return JSONResponse({"recordingId": str(row.id), "egressId": row.egress_id, "status": row.status,
                             "fileUrl": row.file_url, "duration": row.duration})

    @router.delete("/{id}", responses={401: {}, 404: {}, 503: {"description": "the file could not be deleted"}})
    async def delete(id: str, caller: Caller = authorized) -> JSONResponse:  # noqa: A002
        """Stop the recording if it runs, delete its file from storage, then its row."""
        await recordings.delete(find(caller, id))
        return JSONResponse({"success": True})

    return router
