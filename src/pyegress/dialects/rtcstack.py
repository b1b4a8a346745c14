"""RTCstack's recording API as a dialect service: one composite MP4 recording per room, and RTCstack's
own ``egress_ended`` webhook when it ends (docs/wire.md, "RTCstack recording API").

A start records a 1280x720 30 fps grid room composite to ``{roomId}/{timestamp}.mp4``
(``2024-04-21T10-00-00``, UTC) in the default storage, or returns the room's running recording (the call
is idempotent). When a recording ends, whatever the outcome, ``egress_ended`` (``event, egressId, roomId,
file, duration`` in s, ``size`` in bytes, ``error`` unless it completed) goes to the RTCstack webhook URLs
through the webhook outbox (:meth:`WebhookSender.enqueue_json`), as ``application/json``. The room ID is
the LiveKit room name.

Which egress records a room is kept in memory: an egress never outlives the process that runs it (a
restart marks it failed), so neither does this.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from livekit.protocol import egress as eg

from ..database.egress_store import ACTIVE_STATUSES
from ..errors import EgressError
from ..service.egress_service import EgressService
from ..webhooks.sender import WebhookSender

S = eg.EgressStatus


@dataclass
class _Started:
    room_id: str
    requested_ns: int  # when start was called: startedAt until the egress reports its own start


class RtcstackRecordings:
    """The rooms' recordings; ``egress_ended`` webhooks go to ``webhook_urls`` through ``webhooks``."""

    def __init__(self, service: EgressService, webhooks: WebhookSender, webhook_urls: list[str]) -> None:
        self.service, self.webhooks, self.webhook_urls = service, webhooks, webhook_urls
        self._started: dict[str, _Started] = {}  # egress ID -> its room
        self._by_room: dict[str, str] = {}  # room ID -> egress ID of its latest recording
        self._start_lock = asyncio.Lock()  # two concurrent starts must still give one recording
        service.add_listener(self._on_egress)

    def active(self, room_id: str) -> eg.EgressInfo | None:
        """The room's running recording, None if it is not being recorded."""
        egress_id = self._by_room.get(room_id)
        info = self.service.store.get(egress_id) if egress_id else None
        return info if info is not None and info.status in ACTIVE_STATUSES else None

    def started_at(self, info: eg.EgressInfo) -> int:
        """Unix ns the recording started, or was asked to while its egress is starting."""
        return info.started_at or self._started[info.egress_id].requested_ns

    async def start(self, room_id: str) -> eg.EgressInfo:
        """Start recording the room, or return its running recording.

        Raises:
            EgressError: the service's refusal (``room_name`` its field).
        """
        async with self._start_lock:
            info = self.active(room_id)
            if info is None:
                stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H-%M-%S")
                # No encoding options: LiveKit's default H264_720P_30, RTCstack's 1280x720 at 30 fps.
                req = eg.RoomCompositeEgressRequest(room_name=room_id, layout="grid", file_outputs=[
                    eg.EncodedFileOutput(file_type=eg.EncodedFileType.MP4, filepath=f"{{room_name}}/{stamp}.mp4",
                                         disable_manifest=True)])
                requested = time.time_ns()
                info = await self.service.start_room_composite(req)
                self._started[info.egress_id] = _Started(room_id, requested)
                self._by_room[room_id] = info.egress_id
        return info

    async def stop(self, room_id: str) -> eg.EgressInfo:
        """Stop the room's recording; the file is complete when ``egress_ended`` goes out.

        Raises:
            EgressError: ``not_found`` when the room is not being recorded (or its recording has just ended).
        """
        info = self.active(room_id)
        if info is None:
            raise EgressError("not_found", f"room {room_id!r} is not being recorded")
        return await self.service.stop_egress(eg.StopEgressRequest(egress_id=info.egress_id))

    def _on_egress(self, info: eg.EgressInfo) -> None:
        """``egress_ended`` once one of these recordings has ended, whatever the outcome."""
        if info.status in ACTIVE_STATUSES or info.egress_id not in self._started:
            return
        room_id = self._started.pop(info.egress_id).room_id
        if self._by_room.get(room_id) == info.egress_id:
            del self._by_room[room_id]
        file = info.file_results[0] if info.file_results else None
        payload = {"event": "egress_ended", "egressId": info.egress_id, "roomId": room_id,
                   "file": file.filename if file else None,
                   "duration": round(file.duration / 1e9, 3) if file else 0,
                   "size": file.size if file else 0}
        if info.status not in (S.EGRESS_COMPLETE, S.EGRESS_LIMIT_REACHED):
            payload["error"] = info.error or S.Name(info.status)
        self.webhooks.enqueue_json("egress_ended", info.egress_id, payload, self.webhook_urls)
