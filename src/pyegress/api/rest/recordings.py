"""The recordings API of the Next.js recordings skill (seed 003): per-user recordings in the ``recordings`` table.

| route | does | reply |
|---|---|---|
| ``POST /api/video/recordings`` | start a room composite, or a track with ``trackBased`` + ``trackSid`` | 201 ``{recordingId, egressId, status}`` |
| ``GET /api/video/recordings?roomName=&limit=`` | the user's recordings, newest first | ``{recordings: [Recording]}`` |
| ``GET /api/video/recordings/{id}`` | one recording and, once completed, a download URL valid 1 h | ``{recording, downloadUrl}`` |
| ``PATCH /api/video/recordings/{id}`` | stop it and wait (up to 30 s) for the file | ``{recordingId, egressId, status, fileUrl, duration}`` |
| ``DELETE /api/video/recordings/{id}`` | stop it if running, delete the file and the row | ``{success: true}`` |

The user is the identity of the ``Authorization: Bearer`` LiveKit token, which
needs the ``roomRecord`` grant (:class:`~pyegress.api.auth.Authorizer`; a token
naming a room acts on that room's recordings only, 403 otherwise); another
user's recording is 404, as an unknown one. Errors are ``{"error": ...}`` with ``field`` naming bad input
(400); the seed's 500 for invalid input is not kept. Deliberate deviations
from the seed's code, which the seed's own troubleshooting calls bugs: status
is the egress's real one (``starting`` right after POST, not ``active``);
``vp8`` records WebM (the seed asks for OGG, which holds no video); ``480p``
is 854x480 (not the 720p preset). Bitrates are kbps, as LiveKit's
EncodingOptions; the default video bitrate is LiveKit's preset one for the
size (1500/3000/4500 kbps).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from livekit.protocol import egress as eg
from livekit.protocol import models
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ...errors import EgressError
from ...service.egress_service import EgressService
from ...service.requests.paths import confine
from ...storage import AnyStorage
from ...database.egress_store import ACTIVE_STATUSES
from ...database.recordings_store import FINAL_STATUSES, Recording, RecordingStore
from ..auth import Authorizer, Caller
from . import error, from_egress_error, iso_ms, safe_room_name
from .downloads import signed_url

log = logging.getLogger(__name__)
S = eg.EgressStatus

#: EgressStatus -> seed 003's RecordingStatusValue (the seed's getRecordingStatus, plus the statuses it lacks).
STATUS = {S.EGRESS_STARTING: "starting", S.EGRESS_ACTIVE: "active", S.EGRESS_ENDING: "stopping",
          S.EGRESS_COMPLETE: "completed", S.EGRESS_LIMIT_REACHED: "completed", S.EGRESS_FAILED: "failed",
          S.EGRESS_ABORTED: "failed"}
#: Seed 003 RECORDING_PRESETS (pixels) and the video bitrate (kbps) of LiveKit's preset of that height.
RESOLUTIONS = {"480p": (854, 480, 1500), "720p": (1280, 720, 3000), "1080p": (1920, 1080, 4500)}
DOWNLOAD_URL_TTL_S = 3600  # seed 003: "downloadUrl is a presigned S3 URL valid for 1 hour"
STOP_WAIT_S = 30.0
MAX_LIST_LIMIT = 1000
_FIELDS = {"room_name": "roomName", "track_id": "trackSid"}


class StartRecording(BaseModel):
    """Seed 003's ``startRecordingSchema`` (zod): strict types, unknown keys ignored; bitrates in kbps."""

    model_config = ConfigDict(strict=True, extra="ignore")

    roomName: str = Field(min_length=1)  # noqa: N815 (the seed's JSON names)
    layout: Literal["speaker", "grid", "single-speaker"] = "grid"
    resolution: Literal["480p", "720p", "1080p"] = "1080p"
    codec: Literal["h264", "vp8"] = "h264"
    audioBitrate: int | None = Field(None, gt=0, le=512)  # noqa: N815
    videoBitrate: int | None = Field(None, gt=0, le=50_000)  # noqa: N815
    trackBased: bool = False  # noqa: N815
    trackSid: str | None = None  # noqa: N815


def recording_json(row: Recording) -> dict:
    """A row as the seed's Drizzle ``select()`` returns it through ``NextResponse.json``: camelCase keys,
    ISO dates, ``duration`` in s, ``fileSize`` in bytes."""
    return {"id": str(row.id), "roomName": row.room_name, "roomSid": row.room_sid, "egressId": row.egress_id,
            "status": row.status, "layout": row.layout, "codec": row.codec, "resolution": row.resolution,
            "startedAt": iso_ms(row.started_at), "stoppedAt": iso_ms(row.stopped_at), "fileUrl": row.file_url,
            "storageKey": row.storage_key, "fileSize": row.file_size, "duration": row.duration,
            "userId": row.user_id, "createdAt": iso_ms(row.created_at), "updatedAt": iso_ms(row.updated_at)}


def _utc(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, timezone.utc)


def egress_fields(info: eg.EgressInfo) -> dict:
    """The columns an EgressInfo decides: status, room SID, times and the first file's result."""
    values: dict = {"status": STATUS.get(info.status, "failed")}
    if info.room_id:
        values["room_sid"] = info.room_id
    if info.started_at:
        values["started_at"] = _utc(info.started_at)
    if info.file_results:
        f = info.file_results[0]
        values.update(file_url=f.location, storage_key=f.filename, file_size=f.size, duration=f.duration / 1e9)
    if values["status"] in FINAL_STATUSES:
        values["stopped_at"] = _utc(info.ended_at or time.time_ns())
    return values


def _is_local(row: Recording) -> bool:
    """Whether the file is on this machine's disk: no upload, or the backup of a failed one."""
    return bool(row.file_url) and "://" not in row.file_url


def recordings_router(service: EgressService, api_key: str, api_secret: str,
                      storage: AnyStorage | None, public_url: str) -> APIRouter:
    """The seed 003 routes on ``service``; ``storage`` is the default upload destination (presigned
    download URLs and deletes of uploaded files), None when files stay on local disk; ``public_url``
    is the base of pyegress's own signed download URLs."""
    router = APIRouter(prefix="/api/video/recordings", tags=["Recordings API (seed 003)"])
    store = RecordingStore(service.store.engine)
    recordings_dir: Path = service.recordings_dir
    ended: dict[str, asyncio.Event] = {}  # egress ID -> set when it ends (PATCH and DELETE wait on it)

    authorized = Depends(Authorizer(api_key, api_secret, identity=True))

    def find(caller: Caller, recording_id: str) -> Recording | JSONResponse:
        try:
            row = store.get(uuid.UUID(recording_id), caller.identity)
        except ValueError:  # not a UUID: no such recording either
            row = None
        if row is None:
            return error(404, "Recording not found")
        caller.check_room(row.room_name, "id")
        return row

    async def wait_ended(egress_id: str) -> None:
        info = service.store.get(egress_id)
        if info is None or info.status not in ACTIVE_STATUSES:
            return
        event = ended.setdefault(egress_id, asyncio.Event())  # no await since the check: the end can't slip by
        try:
            await asyncio.wait_for(event.wait(), STOP_WAIT_S)
        except TimeoutError:
            log.warning("egress %s did not end within %.0f s of its stop", egress_id, STOP_WAIT_S)

    async def stop_and_wait(row: Recording) -> None:
        try:
            await service.stop_egress(eg.StopEgressRequest(egress_id=row.egress_id))
        except EgressError:  # ended on its own meanwhile
            pass
        await wait_ended(row.egress_id)

    def download_url(row: Recording) -> str | None:
        if row.status != "completed" or not row.storage_key:
            return None
        if _is_local(row):
            return signed_url(public_url, api_secret, row.storage_key, DOWNLOAD_URL_TTL_S)
        if storage is None:
            return None
        try:
            return storage.presign(row.storage_key, DOWNLOAD_URL_TTL_S)
        except Exception as e:  # credentials that cannot sign: the recording is still shown, without a URL
            log.warning("cannot presign %s of recording %s: %s", row.storage_key, row.id, e)
            return None

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
            return error(400, f"{field}: {err['msg']}", field)
        if problem := safe_room_name(body.roomName):
            return error(400, f"roomName: {problem}", "roomName")
        caller.check_room(body.roomName, "roomName")
        if body.trackBased and not body.trackSid:
            return error(400, "trackSid is required for track-based recording", "trackSid")  # the seed's words
        stamp = time.time_ns() // 1_000_000  # the seed's Date.now()
        try:
            if body.trackBased:
                info = await service.start_track(eg.TrackEgressRequest(
                    room_name=body.roomName, track_id=body.trackSid,
                    file=eg.DirectFileOutput(filepath=f"recordings/{{room_name}}/{stamp}", disable_manifest=True)))
            else:
                width, height, kbps = RESOLUTIONS[body.resolution]
                vp8 = body.codec == "vp8"
                info = await service.start_room_composite(eg.RoomCompositeEgressRequest(
                    room_name=body.roomName, layout=body.layout,
                    advanced=eg.EncodingOptions(
                        width=width, height=height, framerate=30, video_bitrate=body.videoBitrate or kbps,
                        audio_bitrate=body.audioBitrate or 0,
                        video_codec=models.VideoCodec.VP8 if vp8 else models.VideoCodec.H264_MAIN),
                    file_outputs=[eg.EncodedFileOutput(
                        file_type=eg.EncodedFileType.DEFAULT_FILETYPE if vp8 else eg.EncodedFileType.MP4,
                        filepath=f"recordings/{{room_name}}/{stamp}.{'webm' if vp8 else 'mp4'}",
                        disable_manifest=True)]))
        except EgressError as e:
            return from_egress_error(e, _FIELDS)
        row = store.add(Recording(room_name=body.roomName, egress_id=info.egress_id, user_id=caller.identity,
                                  layout="single-speaker" if body.trackBased else body.layout,  # as the seed
                                  codec=body.codec, resolution=body.resolution, **egress_fields(info)))
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
                return error(400, f"limit: must be an integer from 1 to {MAX_LIST_LIMIT}", "limit")
            count = int(limit)
        caller.check_room(roomName or caller.room, "roomName")
        rows = store.list(caller.identity, roomName or caller.room, count)
        return JSONResponse({"recordings": [recording_json(r) for r in rows]})

    @router.get("/{id}", responses={401: {}, 404: {}})
    async def get_recording(id: str, caller: Caller = authorized) -> JSONResponse:  # noqa: A002 (the seed's name)
        """The recording, and for a completed one a download URL valid for 1 h."""
        row = find(caller, id)
        if isinstance(row, JSONResponse):
            return row
        return JSONResponse({"recording": recording_json(row), "downloadUrl": download_url(row)})

    @router.patch("/{id}", responses={401: {}, 404: {}, 409: {"description": "the recording has ended"}})
    async def stop(id: str, caller: Caller = authorized) -> JSONResponse:  # noqa: A002
        """Stop the recording; answers when the file is complete (or after 30 s, still ``stopping``)."""
        row = find(caller, id)
        if isinstance(row, JSONResponse):
            return row
        if row.status in FINAL_STATUSES:
            return error(409, f"Recording is not active (status: {row.status})")
        await stop_and_wait(row)
        row = store.get(row.id, row.user_id) or row
        return JSONResponse({"recordingId": str(row.id), "egressId": row.egress_id, "status": row.status,
                             "fileUrl": row.file_url, "duration": row.duration})

    @router.delete("/{id}", responses={401: {}, 404: {}, 503: {"description": "the file could not be deleted"}})
    async def delete(id: str, caller: Caller = authorized) -> JSONResponse:  # noqa: A002
        """Stop the recording if it runs, delete its file from storage, then its row."""
        row = find(caller, id)
        if isinstance(row, JSONResponse):
            return row
        if row.status not in FINAL_STATUSES:
            await stop_and_wait(row)
            row = store.get(row.id, row.user_id) or row
        if row.storage_key:
            try:
                if _is_local(row):
                    confine(recordings_dir, row.storage_key, "storageKey").unlink(missing_ok=True)
                elif storage is not None:
                    await asyncio.to_thread(storage.delete, row.storage_key)
            except Exception as e:  # storage down or refusing: keep the row so the delete can be retried
                log.warning("cannot delete %s of recording %s: %s", row.storage_key, row.id, e)
                return error(503, "the recording's file could not be deleted; try again")
        store.delete(row.id)
        return JSONResponse({"success": True})

    def on_egress(info: eg.EgressInfo) -> None:
        """Keep rows in step with their egress; wake PATCH/DELETE waiting for the end."""
        for row in store.by_egress(info.egress_id):
            store.update(row.id, **egress_fields(info))
        if info.status not in ACTIVE_STATUSES and info.egress_id in ended:
            ended.pop(info.egress_id).set()

    # Rows of egresses that ended while pyegress was down (a restart fails running egresses) catch up now.
    for row in store.unfinished():
        info = service.store.get(row.egress_id)
        store.update(row.id, **(egress_fields(info) if info else {"status": "failed"}))
    service.add_listener(on_egress)
    return router
