"""EgressService: the LiveKit Egress API's semantics, independent of the wire.

A start request is validated and resolved, becomes a ``livekit.EgressInfo``
(status EGRESS_STARTING), is stored, and a worker process is launched. Worker
events move the EgressInfo through ACTIVE → ENDING → COMPLETE (or FAILED); each
change is stored with ``updated_at``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from livekit import api
from livekit.protocol import egress as eg
from livekit.protocol import models


from ..config import Settings
from ..errors import EgressError, invalid
from ..ids import new_egress_id
from ..contract.streams import redact_url
from ..contract.layouts import Layout
from ..storage import AnyStorage, from_config
from ..database.egress_store import ACTIVE_STATUSES, EgressStore
from ..webhooks.sender import WebhookSender
from ..contract.events import END_FAILURE, HandlerEvent
from ..contract.job import AudioRoute, Command, IOReport, JobSpec
from .admission import CpuAdmission, admitted, composite_cost, track_cost
from .disk_results import file_results_from_disk
from ..contract.egress_info import CODE_FAILED, apply_worker_event, end_details, set_failed
from .job_record import JobRecord
from .manifests import write_manifests
from .requests import (redacted_request, resolve_encoding, resolve_outputs, resolve_track_egress, track_values,
                       request_outputs, unified_to_composite, validate_room_composite,
                       validate_stream_urls)
from .requests import template_url, validate_web
from .handler_pool import HandlerPool
from .handler_process import HandlerProcess

log = logging.getLogger(__name__)
S = eg.EgressStatus
_EGRESS_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
PAUSE_ACK_S = 5.0  # how long pause/resume wait for the worker to confirm
#: EgressInfo.error of egresses a previous run of the service left without their worker
MSG_SERVICE_RESTARTED = "pyegress restarted while the egress was running"


@dataclass(frozen=True)
class StartOptions:
    """What a start request may bring from outside the Egress API (livekit-server's
    ``rpc.StartEgressRequest``): the ``egress_id`` it assigned, the room's SID, and a
    recorder ``token``/``ws_url`` to use instead of minting one. Empty fields: pyegress decides."""

    egress_id: str = ""
    room_id: str = ""
    token: str = ""
    ws_url: str = ""
    webhooks: bool = True  # False when livekit-server announces the egress itself (it gets IOInfo reports)
    # where outputs without an upload of their own go, instead of the config's default storage: for
    # destinations a LiveKit request cannot name (RealtimeKit's SFTP storage_config)
    upload: AnyStorage | None = None

    def chosen_egress_id(self) -> str:
        """The ``egress_id`` given, else a new one.

        Raises:
            EgressError: ``invalid_argument`` for a given ID that could not name a file (it names the
                egress's log), such as ``../x``: LiveKit's IDs are ``EG_`` and letters and digits.
        """
        if not self.egress_id:
            return new_egress_id()
        if not _EGRESS_ID.fullmatch(self.egress_id):
            raise invalid("egress_id", f"{self.egress_id[:80]!r} is not an egress ID (letters, digits, _ and -)")
        return self.egress_id


NO_OPTIONS = StartOptions()


class EgressService:
    """Starts, tracks, lists and stops egresses.

    Every public method takes and returns ``livekit-protocol`` messages and
    raises :class:`~pyegress.errors.EgressError` for bad requests; every start
    raises it with ``resource_exhausted`` when the egress's CPU cost does not
    fit the budget (:attr:`admission`, LiveKit's ``cpu_cost``).
    """

    def __init__(self, settings: Settings, store: EgressStore, webhooks: WebhookSender | None = None) -> None:
        self.settings = settings
        self.store = store
        self.webhooks = webhooks
        self._notified: dict[str, int] = {}  # egress ID -> status last announced by webhook
        self._webhook_urls: dict[str, list[str]] = {}  # egress ID -> the request's own webhook URLs
        # the config file's default destination and backup (ValueError names a bad key at startup)
        self.storage = from_config(settings.storage, "storage")
        self.backup = from_config(settings.backup, "backup")
        self.recordings_dir = Path(settings.recordings_dir).resolve()
        self.recordings_dir.mkdir(parents=True, exist_ok=True)
        self._workers: dict[str, HandlerProcess] = {}
        self._infos: dict[str, eg.EgressInfo] = {}
        self._legacy: dict[str, str] = {}  # egress ID -> legacy output oneof its request used
        self._listeners: list[Callable[[eg.EgressInfo], None]] = []
        self._external: set[str] = set()  # egresses whose webhooks livekit-server sends
        self._paused: set[str] = set()  # egress IDs whose worker records nothing until resumed
        self._pause_acks: dict[str, asyncio.Future] = {}  # egress ID -> the worker's paused/resumed event
        self._ending_watch: dict[str, asyncio.TimerHandle] = {}  # egress ID -> kill of a worker slow to end
        # one CPU budget for every egress of this process, from its own API or from livekit-server
        self.admission = CpuAdmission(settings.cpu_cost)
        self.pool = HandlerPool(settings.handler_pool_size, settings.log_dir)  # its owner calls pool.start()
        self.orphans: list[eg.EgressInfo] | None = None  # set by recover()

    def recover(self) -> list[eg.EgressInfo]:
        """End the egresses a previous run of the service left active: their workers are gone. Each is
        read back from its files on disk, gets its manifests and ends EGRESS_FAILED through the same
        path as every other end (store, listeners, ``egress_ended`` webhook). Call it once listeners are
        added; later calls return the same list (a bus worker tells livekit-server about them too).
        Blocks while it reads files."""
        if self.orphans is not None:
            return self.orphans
        self.orphans = []
        for info in self.store.list(active=True):
            job = JobRecord.load(self.store.get_job(info.egress_id))
            if job.external:
                self._external.add(info.egress_id)
            self._webhook_urls[info.egress_id] = self._request_webhooks(info)
            self._notified[info.egress_id] = info.status  # its start was announced by the previous run
            file_results_from_disk(info)
            info.details = end_details(END_FAILURE)
            set_failed(info, MSG_SERVICE_RESTARTED, CODE_FAILED, time.time_ns())
            try:
                write_manifests(info, job.files, job.segments, self.settings.upload_retry_base_s)
            except OSError as e:
                log.error("egress %s: cannot write its manifest: %s", info.egress_id, e)
            self._save(info)
            self._external.discard(info.egress_id)
            self.orphans.append(info)
            log.warning("egress %s was left running by a previous run: ended FAILED", info.egress_id)
        return self.orphans

    @staticmethod
    def _request_webhooks(info: eg.EgressInfo) -> list[str]:
        """The request's own webhook URLs (``webhooks`` of its request, as echoed in ``info``)."""
        request = getattr(info, info.WhichOneof("request") or "", None)
        return [w.url for w in getattr(request, "webhooks", []) if w.url]

    def add_listener(self, listener: Callable[[eg.EgressInfo], None]) -> None:
        """Call ``listener(info)`` after every stored change of any egress (the REST dialects follow
        their recordings this way); it must not block and gets the live message, so copy what it keeps."""
        self._listeners.append(listener)

    def get_info(self, egress_id: str) -> eg.EgressInfo | None:
        """The EgressInfo of ``egress_id`` (live while it runs), or None if unknown."""
        return self._infos.get(egress_id) or self.store.get(egress_id)

    def active_egress_ids(self) -> list[str]:
        """Egresses with a running worker process."""
        return list(self._workers)

    def is_external(self, egress_id: str) -> bool:
        """True for an egress started with ``StartOptions(webhooks=False)`` (livekit-server's job)."""
        return egress_id in self._external

    # ---- API methods ------------------------------------------------------
    async def start_room_composite(self, req: eg.RoomCompositeEgressRequest,
                                   opts: StartOptions = NO_OPTIONS) -> eg.EgressInfo:
        """StartRoomCompositeEgress: record a room's participants composited into one output."""
        validate_room_composite(req)
        return await self._start_composite(req, "room_composite", audio=not req.video_only, video=not req.audio_only,
                                           layout=req.layout or "grid", opts=opts,
                                           audio_mixing=eg.AudioMixing.Name(req.audio_mixing).lower().removesuffix(
                                               "_mixing"), **self._custom_template(req))

    async def start_web(self, req: eg.WebEgressRequest, opts: StartOptions = NO_OPTIONS) -> eg.EgressInfo:
        """StartWebEgress: record the page at ``url`` as headless Chromium renders it, with its sound.

        Raises:
            EgressError: ``invalid_argument`` for a missing or non-http(s) ``url`` or a bad output.
        """
        audio, video = validate_web(req.url, req.audio_only, req.video_only)
        return await self._start_composite(req, "web", audio=audio, video=video, layout="grid", opts=opts,
                                           web_url=req.url, await_start_signal=req.await_start_signal)

    async def start_participant(self, req: eg.ParticipantEgressRequest,
                                opts: StartOptions = NO_OPTIONS) -> eg.EgressInfo:
        """StartParticipantEgress: one participant's camera and microphone (or screen share and its audio).

        Raises:
            EgressError: ``invalid_argument`` without ``identity``, ``not_found``
                if the participant is not in the room.
        """
        if not req.room_name:
            raise invalid("room_name", "is required")
        if not req.identity:
            raise invalid("identity", "is required")
        room_id, participants = await self._participants(req.room_name)
        if not any(p.identity == req.identity for p in participants):
            raise EgressError("not_found", f"identity: participant {req.identity!r} is not in room {req.room_name!r}",
                              argument="identity")
        return await self._start_composite(req, "participant", audio=True, video=True, layout="grid", opts=opts,
                                           room_id=room_id, identity=req.identity, screen_share=req.screen_share)

    async def start_track_composite(self, req: eg.TrackCompositeEgressRequest,
                                    opts: StartOptions = NO_OPTIONS) -> eg.EgressInfo:
        """StartTrackCompositeEgress: one audio track and one video track, by track SID.

        Raises:
            EgressError: ``invalid_argument`` without any track or with a track of
                the wrong kind, ``not_found`` for an unknown track SID.
        """
        if not req.room_name:
            raise invalid("room_name", "is required")
        if not (req.audio_track_id or req.video_track_id):
            raise invalid("audio_track_id", "set audio_track_id, video_track_id or both")
        room_id, participants = await self._participants(req.room_name)
        tracks = {t.sid: t for p in participants for t in p.tracks}
        for field_name, sid, kind in (("audio_track_id", req.audio_track_id, models.TrackType.AUDIO),
                                      ("video_track_id", req.video_track_id, models.TrackType.VIDEO)):
            if not sid:
                continue
            if sid not in tracks:
                raise EgressError("not_found", f"{field_name}: track {sid!r} is not published in room "
                                  f"{req.room_name!r}", argument=field_name)
            if tracks[sid].type != kind:
                raise invalid(field_name, f"track {sid} is a {models.TrackType.Name(tracks[sid].type).lower()} track")
        return await self._start_composite(req, "track_composite", audio=bool(req.audio_track_id),
                                           video=bool(req.video_track_id), layout="grid", room_id=room_id, opts=opts,
                                           audio_track_id=req.audio_track_id, video_track_id=req.video_track_id)

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
            self._watch_ending(req.egress_id)
        if info.status != S.EGRESS_ENDING:
            info.status = S.EGRESS_ENDING
            self._save(info)
        return info

    async def pause(self, egress_id: str) -> eg.EgressInfo:
        """Pause an active egress: nothing is recorded until :meth:`resume`, which continues the same
        outputs without a gap in their timeline. Returns once the worker has paused (at most
        :data:`PAUSE_ACK_S`). The status stays EGRESS_ACTIVE (LiveKit's EgressStatus has no paused
        state); :meth:`is_paused` tells. Pausing a paused egress changes nothing.

        Raises:
            EgressError: ``not_found`` for an unknown id, ``failed_precondition`` unless EGRESS_ACTIVE.
        """
        return await self._set_paused(egress_id, True)

    async def resume(self, egress_id: str) -> eg.EgressInfo:
        """Resume a paused egress (see :meth:`pause`); resuming one that is not paused changes nothing.

        Raises:
            EgressError: ``not_found`` for an unknown id, ``failed_precondition`` unless EGRESS_ACTIVE.
        """
        return await self._set_paused(egress_id, False)

    def is_paused(self, egress_id: str) -> bool:
        """Whether ``egress_id`` is active and paused."""
        return egress_id in self._paused

    async def _set_paused(self, egress_id: str, paused: bool) -> eg.EgressInfo:
        info = self._get(egress_id)
        worker = self._workers.get(egress_id)
        if info.status != S.EGRESS_ACTIVE or worker is None:
            raise EgressError("failed_precondition", f"egress {egress_id} is {S.Name(info.status)}, not active",
                              egress_id=egress_id)
        if paused != (egress_id in self._paused):
            (self._paused.add if paused else self._paused.discard)(egress_id)
            ack = self._pause_acks[egress_id] = asyncio.get_running_loop().create_future()
            await worker.send(Command(cmd="pause" if paused else "resume"))
            try:  # the caller learns when recording really stopped (or went on), not when it was asked
                await asyncio.wait_for(ack, PAUSE_ACK_S)
            except asyncio.TimeoutError:
                log.warning("egress %s: no %s acknowledgement within %s s", egress_id,
                            "pause" if paused else "resume", PAUSE_ACK_S)
            finally:
                self._pause_acks.pop(egress_id, None)
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

    @admitted(track_cost)
    async def start_track(self, req: eg.TrackEgressRequest, opts: StartOptions = NO_OPTIONS) -> eg.EgressInfo:
        """StartTrackEgress: one track to a file, or an audio track as PCM to a websocket.

        Raises:
            EgressError: ``invalid_argument`` without ``track_id`` or output,
                ``not_found`` for an unknown track SID.
        """
        if not req.room_name:
            raise invalid("room_name", "is required")
        if not req.track_id:
            raise invalid("track_id", "is required")
        room_id, participants = await self._participants(req.room_name)
        found = [(p.identity, t) for p in participants for t in p.tracks
                 if t.sid == req.track_id]
        if not found:
            raise EgressError("not_found", f"track_id: track {req.track_id!r} is not published in room "
                              f"{req.room_name!r}", argument="track_id")
        identity, track = found[0]
        encoding, files, websocket_url = resolve_track_egress(
            req, track, root=self.recordings_dir, storage=opts.upload or self.storage,
            values={"room_name": req.room_name, "room_id": room_id, **track_values(track, identity)})
        egress_id = opts.chosen_egress_id()
        is_audio = track.type == models.TrackType.AUDIO
        info = eg.EgressInfo(egress_id=egress_id, room_id=room_id, room_name=req.room_name,
                             source_type=eg.EgressSourceType.EGRESS_SOURCE_TYPE_SDK, status=S.EGRESS_STARTING)
        info.track.CopyFrom(redacted_request(req))
        spec = self._job(egress_id, req.room_name, opts, source="track", track_id=req.track_id, audio=is_audio,
                         video=not is_audio, encoding=encoding, files=files, websocket_url=websocket_url,
                         empty_timeout_s=0)
        if files:
            self._legacy[egress_id] = "file"  # TrackEgress reports its file in the legacy `file` too
        if not opts.webhooks:
            self._external.add(egress_id)
        await self._launch(info, spec)
        return info

    async def start_egress(self, req: eg.StartEgressRequest, opts: StartOptions = NO_OPTIONS) -> eg.EgressInfo:
        """StartEgress (the unified request): a ``template`` source is a room composite, a ``media``
        source a track/participant video with routed audio; outputs are the same kinds.

        Raises:
            EgressError: ``invalid_argument`` for a missing source or bad
                output or storage.
        """
        source = req.WhichOneof("source")
        if not req.room_name and source != "web":
            raise invalid("room_name", "is required")
        shim = unified_to_composite(req)
        if source == "template":
            t = req.template
            shim.layout, shim.audio_only, shim.video_only = t.layout, t.audio_only, t.video_only
            shim.custom_base_url = t.custom_base_url
            validate_room_composite(shim)
            return await self._start_composite(shim, "room_composite", audio=not t.video_only,
                                               video=not t.audio_only, layout=t.layout or "grid", request=req,
                                               opts=opts, **self._custom_template(shim))
        if source == "media":
            m = req.media
            video = m.WhichOneof("video") is not None
            routes = [AudioRoute(track_id=r.track_id, identity=r.participant_identity,
                                 kind=r.participant_kind if r.WhichOneof("match") == "participant_kind" else None,
                                 channel={1: "left", 2: "right"}.get(r.channel, "both")) for r in m.audio.routes]
            audio = m.audio.capture_all or bool(routes)
            if not (video or audio):
                raise invalid("media", "select a video (video_track_id or participant_video) or audio")
            return await self._start_composite(
                shim, "media", audio=audio, video=video, layout="grid", request=req, opts=opts,
                video_track_id=m.video_track_id, identity=m.participant_video.identity,
                screen_share=m.participant_video.prefer_screen_share, audio_routes=routes,
                capture_all_audio=m.audio.capture_all)
        if source == "web":
            w = req.web
            audio, video = validate_web(w.url, w.audio_only, w.video_only, field_prefix="web.")
            return await self._start_composite(shim, "web", audio=audio, video=video, layout="grid", request=req,
                                               opts=opts, web_url=w.url, await_start_signal=w.await_start_signal)
        raise invalid("template", "set a source: template, web or media")

    async def update_stream(self, req: eg.UpdateStreamRequest) -> eg.EgressInfo:
        """UpdateStream: add and remove RTMP URLs of an active egress that streams.

        Raises:
            EgressError: ``not_found``; ``failed_precondition`` if the egress is
                not active or was not started with a stream output;
                ``invalid_argument`` for a bad URL.
        """
        info = self._get(req.egress_id)
        if info.status not in ACTIVE_STATUSES:
            raise EgressError("failed_precondition", f"egress {req.egress_id} is {S.Name(info.status)}, not active")
        if not request_outputs(getattr(info, info.WhichOneof("request")))["stream"]:
            raise EgressError("failed_precondition", "UpdateStream needs an egress started with stream_outputs")
        if req.add_output_urls:
            validate_stream_urls(list(req.add_output_urls), "add_output_urls")
        worker = self._workers.get(req.egress_id)
        if worker is not None:
            await worker.send(Command(cmd="update_stream", add_urls=list(req.add_output_urls),
                                      remove_urls=list(req.remove_output_urls)))
        for url in req.add_output_urls:
            info.stream_results.add(url=redact_url(url), status=eg.StreamInfo.Status.ACTIVE)
        self._save(info)
        return info

    # ---- internals --------------------------------------------------------
    @admitted(composite_cost)
    async def _start_composite(self, req, kind: str, *, audio: bool, video: bool, layout: str,
                               opts: StartOptions, request=None, room_id: str = "", template_base_url: str = "",
                               **source) -> eg.EgressInfo:
        """Resolve a composite-style request, create its EgressInfo and launch its worker.

        ``request`` is what EgressInfo echoes when ``req`` is a translation
        (StartEgress); ``kind`` is the request kind and the JobSpec source;
        ``room_id`` saves a lookup when the caller already has it. A
        ``template_base_url`` (a room composite's ``custom_base_url``) records
        that page with the room's template parameters instead of compositing.
        """
        encoding = resolve_encoding(req)
        room_name = getattr(req, "room_name", "")  # a web egress may have no room
        if kind != "web":
            room_id = room_id or opts.room_id or await self._room_sid(room_name)
        egress_id = opts.chosen_egress_id()
        outputs = resolve_outputs(req, root=self.recordings_dir,
                                  values={"room_name": room_name, "room_id": room_id,
                                          "publisher_identity": source.get("identity", "")},
                                  audio=audio, video=video, encoding=encoding, storage=opts.upload or self.storage)
        info = eg.EgressInfo(egress_id=egress_id, room_id=room_id, room_name=room_name,
                             source_type=(eg.EgressSourceType.EGRESS_SOURCE_TYPE_WEB if kind in ("room_composite", "web")
                                          else eg.EgressSourceType.EGRESS_SOURCE_TYPE_SDK),
                             status=S.EGRESS_STARTING)
        if request is not None:
            info.egress.CopyFrom(redacted_request(request))
        else:
            getattr(info, kind).CopyFrom(redacted_request(req))
        spec = self._job(egress_id, room_name, opts, source="web" if template_base_url else kind, layout=layout,
                         audio=audio, video=video, encoding=encoding, files=outputs.files, segments=outputs.segments,
                         images=outputs.images, streams=outputs.streams, **source)
        if template_base_url:
            # The recorder's token is made for this egress ID; LiveKit's templates await START_RECORDING.
            spec.web_url = template_url(template_base_url, ws_url=spec.ws_url, token=spec.token, layout=layout)
            spec.await_start_signal = True
        for url in outputs.streams:  # listed from the start, as LiveKit does; the worker's reports refine them
            info.stream_results.add(url=redact_url(url), status=eg.StreamInfo.Status.ACTIVE)
        if outputs.legacy:
            self._legacy[egress_id] = outputs.legacy
        if not opts.webhooks:
            self._external.add(egress_id)
        await self._launch(info, spec)
        return info

    @staticmethod
    def _custom_template(req: eg.RoomCompositeEgressRequest) -> dict:
        """The ``_start_composite`` options that record a room through its ``custom_base_url`` page, if any."""
        return {"template_base_url": req.custom_base_url} if req.custom_base_url else {}

    def _job(self, egress_id: str, room_name: str, opts: StartOptions, **fields) -> JobSpec:
        """A JobSpec with the service-wide parts filled in (URL, recorder token, limits)."""
        defaults = dict(empty_timeout_s=self.settings.empty_timeout_s,
                        progress_interval_s=self.settings.progress_interval_s,
                        max_duration_s=self.settings.max_duration_s,
                        upload_attempts=self.settings.upload_attempts,
                        upload_retry_base_s=self.settings.upload_retry_base_s,
                        upload_retry_max_s=self.settings.upload_retry_max_s,
                        backup=self.backup, stream_uploads=self.settings.stream_uploads)
        spec = JobSpec(egress_id=egress_id, ws_url=opts.ws_url or self.settings.ws_url, room_name=room_name,
                       token=opts.token or (self._recorder_token(egress_id, room_name) if room_name else ""),
                       **(defaults | fields))  # a web egress without a room has no token
        limits = self.settings.session_limits
        caps = [spec.max_duration_s,
                limits.file_output_max_duration if spec.files else 0, limits.image_output_max_duration if spec.images
                else 0, limits.segment_output_max_duration if spec.segments else 0,
                limits.stream_output_max_duration if spec.streams else 0]
        spec.max_duration_s = min((c for c in caps if c > 0), default=0.0)
        return spec

    async def participants(self, room_name: str) -> tuple[str, list]:
        """The room's SID and participants (``livekit.ParticipantInfo``), for dialects that pick tracks.

        Raises:
            EgressError: ``not_found`` if the room does not exist, ``unavailable`` if livekit-server
                cannot be reached.
        """
        return await self._participants(room_name)

    async def _participants(self, room_name: str) -> tuple[str, list]:
        """The room's SID and participants (``livekit.ParticipantInfo``); checks the room exists."""
        room_id = await self._room_sid(room_name)
        try:
            async with self._api() as lk:
                listed = await lk.room.list_participants(api.ListParticipantsRequest(room=room_name))
                return room_id, list(listed.participants)
        except Exception as e:  # network or server errors of every kind
            raise EgressError("unavailable", f"cannot reach livekit-server: {e}") from None

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
        self._announce(info)
        for listener in self._listeners:
            try:
                listener(info)
            except Exception:  # a dialect's bookkeeping must never break the egress itself
                log.exception("egress listener failed for %s", info.egress_id)

    def _announce(self, info: eg.EgressInfo) -> None:
        """Webhooks as livekit-server sends them: egress_started when created, egress_updated on each
        status change, egress_ended at the end (progress alone is not announced)."""
        if (self.webhooks is None or info.egress_id in self._external
                or self._notified.get(info.egress_id) == info.status):
            return
        first = info.egress_id not in self._notified
        self._notified[info.egress_id] = info.status
        event = ("egress_ended" if info.status not in ACTIVE_STATUSES else "egress_started" if first
                 else "egress_updated")
        self.webhooks.enqueue(event, info, self._webhook_urls.get(info.egress_id, []))
        if event == "egress_ended":
            self._notified.pop(info.egress_id, None)
            self._webhook_urls.pop(info.egress_id, None)

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
        self._webhook_urls[egress_id] = self._request_webhooks(info)
        self._infos[egress_id] = info
        self._save(info)
        self.store.save_job(egress_id, JobRecord.of(spec, self._legacy.get(egress_id, ""),
                                                    egress_id in self._external).dump())

        async def on_event(event: HandlerEvent) -> None:
            if event.event in ("paused", "resumed"):  # acknowledgements: nothing to store
                ack = self._pause_acks.get(egress_id)
                if ack is not None and not ack.done():
                    ack.set_result(event.event)
                return
            try:
                self._apply(info, event)
                if event.event == "active" and self._files_renamed(spec, event):
                    self.store.save_job(egress_id, JobRecord.of(spec, self._legacy.get(egress_id, ""),
                                                                egress_id in self._external).dump())
                if event.event == "ending":
                    self._watch_ending(egress_id)
                if event.event == "failed":  # the worker counted media its files may not hold
                    await asyncio.to_thread(file_results_from_disk, info)
                if event.event in ("complete", "failed"):
                    await asyncio.to_thread(self._write_manifests, info, spec)
            except Exception as e:  # no error here may leave the egress without its end
                log.exception("egress %s: handling its %s event failed", egress_id, event.event)
                if event.event in ("complete", "failed", "aborted") and info.status in ACTIVE_STATUSES:
                    set_failed(info, f"finishing the egress failed: {e}")
            try:
                self._save(info)
            except Exception:  # the store is failing: keep relaying, on_exit tries again
                log.exception("egress %s: cannot save its %s event", egress_id, event.event)

        async def on_exit(code: int) -> None:
            watch = self._ending_watch.pop(egress_id, None)
            if watch is not None:
                watch.cancel()
            if info.status in ACTIVE_STATUSES:
                # a crash (or a kill after the ending timeout): what the files hold is the truth
                error = (f"egress did not finish within {self.settings.ending_timeout_s:g} s of ending"
                         if watch is not None and watch.when() <= asyncio.get_running_loop().time()
                         else f"egress worker exited unexpectedly (code {code})")
                set_failed(info, error)
                try:
                    await asyncio.to_thread(file_results_from_disk, info)
                    await asyncio.to_thread(self._write_manifests, info, spec)
                except Exception:  # the terminal state matters more than its details
                    log.exception("egress %s: reading back its files failed", egress_id)
                self._save(info)
            self._workers.pop(egress_id, None)
            self.admission.release(egress_id)
            self._infos.pop(egress_id, None)
            self._external.discard(egress_id)
            self._paused.discard(egress_id)
            ack = self._pause_acks.get(egress_id)
            if ack is not None and not ack.done():  # nobody will confirm a pause any more
                ack.set_result("exited")

        if egress_id in self._external and self.settings.redis.configured:
            spec.io_report = IOReport(redis=self.settings.redis, legacy=self._legacy.get(egress_id, ""),
                                      info=base64.b64encode(info.SerializeToString()).decode())
        worker = HandlerProcess(spec, self.settings.log_dir / f"{egress_id}.log", on_event, on_exit, self.pool)
        try:
            await worker.start()
        except OSError as e:
            info.status, info.error = S.EGRESS_FAILED, f"cannot start worker: {e}"
            self._save(info)
            raise EgressError("internal", "cannot start egress worker") from None
        self._workers[egress_id] = worker
        self.admission.attach(egress_id, worker.pid)
        log.info("egress %s started for room %s (worker pid %s)", egress_id, info.room_name, worker.pid)

    def _write_manifests(self, info: eg.EgressInfo, spec: JobSpec) -> None:
        """The egress's manifests (:func:`~.manifests.write_manifests`); one that cannot be written is
        logged and left out (``manifest_location`` stays empty), the egress's end stands. Blocks."""
        try:
            write_manifests(info, spec.files, spec.segments, self.settings.upload_retry_base_s)
        except OSError as e:
            log.error("egress %s: cannot write its manifest: %s", info.egress_id, e)

    @staticmethod
    def _files_renamed(spec: JobSpec, event: HandlerEvent) -> bool:
        """Take the names the worker's files really got (``name-1.mp4`` when another egress took the
        name first) into ``spec``, so manifests and a restarted service find them; True if any changed."""
        renamed = False
        for target, result in zip(spec.files, event.files):
            if (target.path, target.filename) != (result.path, result.filename):
                target.path, target.filename, renamed = result.path, result.filename, True
        return renamed

    def _watch_ending(self, egress_id: str) -> None:
        """Bound the ending: a worker that has not exited ``ending_timeout_s`` after it was asked to stop
        (or said it was ending) is killed, and its egress ends FAILED with what its files hold."""
        worker = self._workers.get(egress_id)
        if worker is None or egress_id in self._ending_watch or worker.proc is None:
            return

        def kill() -> None:
            if worker.proc.returncode is None:
                log.error("egress %s: no end within %s s of ending; killing its worker", egress_id,
                          self.settings.ending_timeout_s)
                worker.proc.kill()

        self._ending_watch[egress_id] = asyncio.get_running_loop().call_later(self.settings.ending_timeout_s, kill)

    def _apply(self, info: eg.EgressInfo, event: HandlerEvent) -> None:
        """Fold a worker event into ``info`` (its manifests are written by the caller, in a thread)."""
        apply_worker_event(info, event, self._legacy.get(info.egress_id, ""))

    async def shutdown(self) -> None:
        """Stop every active egress and wait for the files to be finished; end the pool's idle processes."""
        await self.pool.close()
        workers = list(self._workers.values())
        for w in workers:
            await w.send(Command(cmd="stop"))
        await asyncio.gather(*(w.wait() for w in workers), return_exceptions=True)
