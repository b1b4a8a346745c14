"""EgressService: the LiveKit Egress API's semantics, independent of the wire.

A start request is validated and resolved, becomes a ``livekit.EgressInfo``
(status EGRESS_STARTING), is stored, and a worker process is launched. Worker
events move the EgressInfo through ACTIVE → ENDING → COMPLETE (or FAILED); each
change is stored with ``updated_at``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import av
from livekit import api
from livekit.protocol import egress as eg

from ..config import Settings
from ..errors import EgressError, invalid
from ..ids import new_egress_id
from ..media.compose.layout import Layout
from ..store.egress_store import ACTIVE_STATUSES, EgressStore
from ..worker.protocol import Command, JobSpec, WorkerEvent
from .requests import resolve_encoding, resolve_outputs, validate_room_composite
from .worker_process import WorkerProcess

log = logging.getLogger(__name__)
S = eg.EgressStatus


class EgressService:
    """Starts, tracks, lists and stops egresses.

    Every public method takes and returns ``livekit-protocol`` messages and
    raises :class:`~pyegress.errors.EgressError` for bad requests.
    """

    def __init__(self, settings: Settings, store: EgressStore) -> None:
        self.settings = settings
        self.store = store
        self.recordings_dir = Path(settings.recordings_dir).resolve()
        self.recordings_dir.mkdir(parents=True, exist_ok=True)
        self._workers: dict[str, WorkerProcess] = {}
        self._infos: dict[str, eg.EgressInfo] = {}
        self._legacy_file: set[str] = set()  # egresses whose request used the legacy `file` oneof
        self._fail_orphans()

    def _fail_orphans(self) -> None:
        """Egresses left active by a previous run have no worker any more: mark them failed."""
        for info in self.store.list(active=True):
            info.status = S.EGRESS_FAILED
            info.error = "pyegress restarted while the egress was running"
            info.ended_at = info.updated_at = time.time_ns()
            self.store.save(info)

    # ---- API methods ------------------------------------------------------
    async def start_room_composite(self, req: eg.RoomCompositeEgressRequest) -> eg.EgressInfo:
        """StartRoomCompositeEgress: record a room's participants composited into one output."""
        layout = validate_room_composite(req)
        encoding = resolve_encoding(req)
        room_id = await self._room_sid(req.room_name)
        egress_id = new_egress_id()
        outputs = resolve_outputs(req, root=self.recordings_dir,
                                  values={"room_name": req.room_name, "room_id": room_id},
                                  audio=not req.video_only, video=not req.audio_only, encoding=encoding)
        now = time.time_ns()
        info = eg.EgressInfo(egress_id=egress_id, room_id=room_id, room_name=req.room_name,
                             source_type=eg.EgressSourceType.EGRESS_SOURCE_TYPE_WEB,
                             status=S.EGRESS_STARTING, updated_at=now)
        info.room_composite.CopyFrom(req)
        spec = JobSpec(egress_id=egress_id, ws_url=self.settings.ws_url, token=self._recorder_token(egress_id, req.room_name),
                       room_name=req.room_name, layout=req.layout or "grid", audio=not req.video_only,
                       video=not req.audio_only, encoding=encoding, files=outputs.files,
                       empty_timeout_s=self.settings.empty_timeout_s)
        if outputs.legacy_file:
            self._legacy_file.add(egress_id)
        await self._launch(info, spec)
        return info

    async def list_egress(self, req: eg.ListEgressRequest) -> eg.ListEgressResponse:
        """ListEgress: filter by ``room_name``, ``egress_id`` and ``active``."""
        return eg.ListEgressResponse(items=self.store.list(req.room_name, req.egress_id, req.active))

    async def stop_egress(self, req: eg.StopEgressRequest) -> eg.EgressInfo:
        """StopEgress: ask the worker to finish; returns the EgressInfo in EGRESS_ENDING.

        Raises:
            EgressError: ``not_found`` for an unknown id, ``failed_precondition``
                if the egress already ended.
        """
        info = self._get(req.egress_id)
        if info.status not in ACTIVE_STATUSES:
            raise EgressError("failed_precondition",
                              f"egress {req.egress_id} is {S.Name(info.status)}, not active", egress_id=req.egress_id)
        worker = self._workers.get(req.egress_id)
        if worker is not None:
            await worker.send(Command(cmd="stop"))
        if info.status != S.EGRESS_ENDING:
            info.status = S.EGRESS_ENDING
            self._save(info)
        return info

    async def update_layout(self, req: eg.UpdateLayoutRequest) -> eg.EgressInfo:
        """UpdateLayout: switch an active room composite's layout.

        Raises:
            EgressError: ``invalid_argument`` for an unknown layout, ``not_found``,
                ``failed_precondition`` if not an active room composite.
        """
        info = self._get(req.egress_id)
        try:
            Layout.parse(req.layout)
        except ValueError as e:
            raise invalid("layout", str(e)) from None
        if info.WhichOneof("request") != "room_composite" or info.status not in ACTIVE_STATUSES:
            raise EgressError("failed_precondition", f"egress {req.egress_id} is not an active room composite")
        await self._workers[req.egress_id].send(Command(cmd="layout", layout=req.layout))
        info.room_composite.layout = req.layout
        self._save(info)
        return info

    # ---- internals --------------------------------------------------------
    def _get(self, egress_id: str) -> eg.EgressInfo:
        if not egress_id:
            raise invalid("egress_id", "is required")
        info = self._infos.get(egress_id) or self.store.get(egress_id)
        if info is None:
            raise EgressError("not_found", f"egress {egress_id} not found", egress_id=egress_id)
        return info

    def _save(self, info: eg.EgressInfo) -> None:
        info.updated_at = time.time_ns()
        self.store.save(info)

    def _api(self) -> api.LiveKitAPI:
        return api.LiveKitAPI(self.settings.http_url, self.settings.api_key, self.settings.api_secret)

    async def _room_sid(self, room_name: str) -> str:
        """The room's SID from livekit-server.

        Raises:
            EgressError: ``not_found`` if the room does not exist, ``unavailable``
                if livekit-server cannot be reached.
        """
        try:
            async with self._api() as lk:
                rooms = await lk.room.list_rooms(api.ListRoomsRequest(names=[room_name]))
        except Exception as e:  # network or server errors of every kind
            raise EgressError("unavailable", f"cannot reach livekit-server at {self.settings.http_url}: {e}") from None
        if not rooms.rooms:
            raise EgressError("not_found", f"room {room_name!r} does not exist", room_name=room_name)
        return rooms.rooms[0].sid

    def _recorder_token(self, egress_id: str, room_name: str) -> str:
        """A token for the worker: hidden recorder, subscribe only, identity = egress_id."""
        grants = api.VideoGrants(room_join=True, room=room_name, can_subscribe=True, can_publish=False,
                                 can_publish_data=False, hidden=True, recorder=True)
        return (api.AccessToken(self.settings.api_key, self.settings.api_secret)
                .with_identity(egress_id).with_name("pyegress").with_kind("egress")
                .with_grants(grants).to_jwt())

    async def _launch(self, info: eg.EgressInfo, spec: JobSpec) -> None:
        egress_id = info.egress_id
        self._infos[egress_id] = info
        self._save(info)

        async def on_event(event: WorkerEvent) -> None:
            self._apply(info, event)
            self._save(info)

        async def on_exit(code: int) -> None:
            if info.status in ACTIVE_STATUSES:
                info.status = S.EGRESS_FAILED
                info.error = f"egress worker exited unexpectedly (code {code})"
                info.ended_at = time.time_ns()
                self._salvage_files(info, spec)
                self._save(info)
            self._workers.pop(egress_id, None)
            self._infos.pop(egress_id, None)

        worker = WorkerProcess(spec, self.settings.log_dir / f"{egress_id}.log", on_event, on_exit)
        try:
            await worker.start()
        except OSError as e:
            info.status, info.error = S.EGRESS_FAILED, f"cannot start worker: {e}"
            self._save(info)
            raise EgressError("internal", "cannot start egress worker") from None
        self._workers[egress_id] = worker
        log.info("egress %s started for room %s (worker pid %s)", egress_id, info.room_name, worker.pid)

    @staticmethod
    def _salvage_files(info: eg.EgressInfo, spec: JobSpec) -> None:
        """Report what a dead worker left on disk: fragmented MP4 stays playable up to its last fragment."""
        for target in spec.files:
            path = Path(target.path)
            if not path.exists():
                continue
            try:
                with av.open(str(path)) as container:
                    duration_ns = (container.duration or 0) * 1000  # AV_TIME_BASE is µs
            except av.FFmpegError:
                duration_ns = 0
            info.file_results.add(filename=target.filename, location=str(path), size=path.stat().st_size,
                                  duration=duration_ns, started_at=info.started_at,
                                  ended_at=info.started_at + duration_ns if info.started_at else 0)

    def _apply(self, info: eg.EgressInfo, event: WorkerEvent) -> None:
        """Fold a worker event into ``info``."""
        if event.event == "active":
            info.status, info.started_at = S.EGRESS_ACTIVE, event.started_at
            info.room_id = info.room_id or event.room_id
        elif event.event == "ending":
            info.status = S.EGRESS_ENDING
        elif event.event in ("complete", "failed"):
            del info.file_results[:]
            for f in event.files:
                info.file_results.add(filename=f.filename, location=f.path, size=f.size, duration=f.duration,
                                      started_at=f.started_at, ended_at=f.ended_at)
            if info.file_results and info.egress_id in self._legacy_file:
                info.file.CopyFrom(info.file_results[0])
            info.ended_at = event.ended_at or time.time_ns()
            if event.event == "complete":
                info.status = S.EGRESS_COMPLETE
                info.details = event.reason
            else:
                info.status, info.error = S.EGRESS_FAILED, event.error

    async def shutdown(self) -> None:
        """Stop every active egress and wait for the files to be finished."""
        workers = list(self._workers.values())
        for w in workers:
            await w.send(Command(cmd="stop"))
        await asyncio.gather(*(w.wait() for w in workers), return_exceptions=True)
