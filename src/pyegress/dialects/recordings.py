"""The recordings API of the Next.js recordings skill as a dialect service (docs/wire.md, "Recordings
API"): per-user recordings in the ``recordings`` table (``database/recordings_store.py``), each one egress.

Another user's recording is ``not_found``, as an unknown one. Deliberate deviations from the skill's code,
which its own troubleshooting calls bugs: status is the egress's real one (``starting`` right after a start,
not ``active``); ``vp8`` records WebM (the skill asks for OGG, which holds no video); ``480p`` is 854x480
(not the 720p preset). Bitrates are kbps, as LiveKit's EncodingOptions; the default video bitrate is
LiveKit's preset one for the size (1500/3000/4500 kbps).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from livekit.protocol import egress as eg
from livekit.protocol import models
from pydantic import BaseModel, ConfigDict, Field

from ..database.egress_store import ACTIVE_STATUSES
from ..database.recordings_store import FINAL_STATUSES, Recording, RecordingStore
from ..errors import EgressError
from ..service.egress_service import EgressService
from ..service.requests.paths import confine
from . import stop_quietly
from .links import DownloadLinks

log = logging.getLogger(__name__)
S = eg.EgressStatus

#: EgressStatus -> the skill's RecordingStatusValue (its getRecordingStatus, plus the statuses it lacks).
STATUS = {S.EGRESS_STARTING: "starting", S.EGRESS_ACTIVE: "active", S.EGRESS_ENDING: "stopping",
          S.EGRESS_COMPLETE: "completed", S.EGRESS_LIMIT_REACHED: "completed", S.EGRESS_FAILED: "failed",
          S.EGRESS_ABORTED: "failed"}
#: The skill's RECORDING_PRESETS (pixels) and the video bitrate (kbps) of LiveKit's preset of that height.
RESOLUTIONS = {"480p": (854, 480, 1500), "720p": (1280, 720, 3000), "1080p": (1920, 1080, 4500)}
DOWNLOAD_URL_TTL_S = 3600  # the skill: "downloadUrl is a presigned S3 URL valid for 1 hour"
STOP_WAIT_S = 30.0


class StartRecording(BaseModel):
    """The skill's ``startRecordingSchema`` (zod): strict types, unknown keys ignored; bitrates in kbps."""

    model_config = ConfigDict(strict=True, extra="ignore")

    roomName: str = Field(min_length=1)  # noqa: N815 (the skill's JSON names)
    layout: Literal["speaker", "grid", "single-speaker"] = "grid"
    resolution: Literal["480p", "720p", "1080p"] = "1080p"
    codec: Literal["h264", "vp8"] = "h264"
    audioBitrate: int | None = Field(None, gt=0, le=512)  # noqa: N815
    videoBitrate: int | None = Field(None, gt=0, le=50_000)  # noqa: N815
    trackBased: bool = False  # noqa: N815
    trackSid: str | None = None  # noqa: N815


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


def egress_request(body: StartRecording, stamp: int) -> eg.TrackEgressRequest | eg.RoomCompositeEgressRequest:
    """The egress a start asks for: a track egress of ``trackSid``, else a room composite of the preset size,
    to ``recordings/{room_name}/<stamp>[.mp4|.webm]`` (``stamp``: the skill's ``Date.now()``)."""
    if body.trackBased:
        return eg.TrackEgressRequest(
            room_name=body.roomName, track_id=body.trackSid,
            file=eg.DirectFileOutput(filepath=f"recordings/{{room_name}}/{stamp}", disable_manifest=True))
    width, height, kbps = RESOLUTIONS[body.resolution]
    vp8 = body.codec == "vp8"
    return eg.RoomCompositeEgressRequest(
        room_name=body.roomName, layout=body.layout,
        advanced=eg.EncodingOptions(
            width=width, height=height, framerate=30, video_bitrate=body.videoBitrate or kbps,
            audio_bitrate=body.audioBitrate or 0,
            video_codec=models.VideoCodec.VP8 if vp8 else models.VideoCodec.H264_MAIN),
        file_outputs=[eg.EncodedFileOutput(
            file_type=eg.EncodedFileType.DEFAULT_FILETYPE if vp8 else eg.EncodedFileType.MP4,
            filepath=f"recordings/{{room_name}}/{stamp}.{'webm' if vp8 else 'mp4'}", disable_manifest=True)])


class Recordings:
    """The users' recordings: start, list, stop (waiting for the file), delete (file and row); rows follow
    their egress. ``links`` gives completed files their download URL; its storage (pyegress's default) is
    also where uploaded files are deleted from."""

    def __init__(self, service: EgressService, links: DownloadLinks) -> None:
        self.service, self.links = service, links
        self.store = RecordingStore(service.store.engine)
        self.recordings_dir: Path = service.recordings_dir
        self._ended: dict[str, asyncio.Event] = {}  # egress ID -> set when it ends (stop and delete wait on it)
        # Rows of egresses that ended while pyegress was down (a restart fails running egresses) catch up now.
        for row in self.store.unfinished():
            info = service.store.get(row.egress_id)
            self.store.update(row.id, **(egress_fields(info) if info else {"status": "failed"}))
        service.add_listener(self._on_egress)

    async def start(self, user: str, body: StartRecording) -> Recording:
        """Start a composite recording, or a track recording (``trackBased`` with ``trackSid``).

        Raises:
            EgressError: ``invalid_argument`` naming ``trackSid`` when it is missing; the service's refusal
                (``room_name``, ``track_id`` its fields).
        """
        if body.trackBased and not body.trackSid:
            raise EgressError("invalid_argument", "trackSid is required for track-based recording",  # the skill's
                              argument="trackSid")
        request = egress_request(body, time.time_ns() // 1_000_000)
        if body.trackBased:
            info = await self.service.start_track(request)
        else:
            info = await self.service.start_room_composite(request)
        return self.store.add(Recording(room_name=body.roomName, egress_id=info.egress_id, user_id=user,
                                        layout="single-speaker" if body.trackBased else body.layout,  # as the skill
                                        codec=body.codec, resolution=body.resolution, **egress_fields(info)))

    def list(self, user: str, room_name: str, limit: int) -> list[Recording]:
        """The user's recordings, newest first (only ``room_name``'s if given)."""
        return self.store.list(user, room_name, limit)

    def find(self, user: str, recording_id: str) -> Recording:
        """The user's recording.

        Raises:
            EgressError: ``not_found`` for an unknown ID (or not a UUID) or another user's recording.
        """
        try:
            row = self.store.get(uuid.UUID(recording_id), user)
        except ValueError:  # not a UUID: no such recording either
            row = None
        if row is None:
            raise EgressError("not_found", "Recording not found")
        return row

    def download_url(self, row: Recording) -> str | None:
        """A URL valid 1 h for a completed recording's file, None before (or if none can be given)."""
        if row.status != "completed" or not row.storage_key:
            return None
        return self.links.url(row.storage_key, _is_local(row), DOWNLOAD_URL_TTL_S)

    async def stop(self, row: Recording) -> Recording:
        """Stop the recording and wait (up to :data:`STOP_WAIT_S`) for its egress to end.

        Raises:
            EgressError: ``aborted`` (409) when it has already ended.
        """
        if row.status in FINAL_STATUSES:
            raise EgressError("aborted", f"Recording is not active (status: {row.status})")
        return await self._stop_and_wait(row)

    async def delete(self, row: Recording) -> None:
        """Stop the recording if it runs, delete its file from storage, then its row.

        Raises:
            EgressError: ``unavailable`` (503) when the file could not be deleted: the row stays, so the
                delete can be retried.
        """
        if row.status not in FINAL_STATUSES:
            row = await self._stop_and_wait(row)
        if row.storage_key:
            try:
                if _is_local(row):
                    confine(self.recordings_dir, row.storage_key, "storageKey").unlink(missing_ok=True)
                elif self.links.storage is not None:
                    await asyncio.to_thread(self.links.storage.delete, row.storage_key)
            except Exception as e:  # storage down or refusing: keep the row so the delete can be retried
                log.warning("cannot delete %s of recording %s: %s", row.storage_key, row.id, e)
                raise EgressError("unavailable", "the recording's file could not be deleted; try again") from None
        self.store.delete(row.id)

    async def _stop_and_wait(self, row: Recording) -> Recording:
        await stop_quietly(self.service, row.egress_id)  # None: it ended on its own meanwhile
        info = self.service.store.get(row.egress_id)
        if info is not None and info.status in ACTIVE_STATUSES:
            event = self._ended.setdefault(row.egress_id, asyncio.Event())  # no await since the check
            try:
                await asyncio.wait_for(event.wait(), STOP_WAIT_S)
            except TimeoutError:
                log.warning("egress %s did not end within %.0f s of its stop", row.egress_id, STOP_WAIT_S)
        return self.store.get(row.id, row.user_id) or row

    def _on_egress(self, info: eg.EgressInfo) -> None:
        """Keep rows in step with their egress; wake stops and deletes waiting for the end."""
        for row in self.store.by_egress(info.egress_id):
            self.store.update(row.id, **egress_fields(info))
        if info.status not in ACTIVE_STATUSES and info.egress_id in self._ended:
            self._ended.pop(info.egress_id).set()
