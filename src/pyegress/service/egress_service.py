"""EgressService: the LiveKit Egress API's semantics, independent of the wire.

A start request is validated and resolved (:mod:`.requests`), becomes a ``livekit.EgressInfo``
(status EGRESS_STARTING), is stored, and its handler process is launched (:mod:`.running`, one
:class:`~.egress_job.EgressJob` per egress). Handler events move the EgressInfo through ACTIVE → ENDING →
COMPLETE (or FAILED); each change is stored with ``updated_at``, announced by webhook (:mod:`.announcer`)
and passed to the listeners. Rooms are looked up in :mod:`.rooms`; egresses left without their handler end
in :mod:`.orphans`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

from livekit.protocol import egress as eg
from livekit.protocol import models

from .. import metrics
from ..config import Settings
from ..contract.job import AudioRoute, Command, JobSpec
from ..contract.layouts import Layout
from ..contract.streams import redact_url
from ..database.egress_store import ACTIVE_STATUSES, EgressStore
from ..errors import EgressError, invalid
from ..storage import from_config
from ..webhooks.sender import WebhookSender
from . import page_token
from .admission import CpuAdmission, admitted, composite_cost, track_cost
from .announcer import announce
from .egress_job import PAUSE_ACK_S, EgressJob
from .handler_pool import HandlerPool
from .job_record import JobRecord
from .job_spec import NO_OPTIONS, StartOptions, new_spec
from .orphans import MSG_SERVICE_RESTARTED, end_left_behind
from .requests import (media_selection, passthrough_track, redacted_request, request_outputs, resolve_encoding,
                       resolve_outputs, resolve_passthrough_egress, resolve_track_egress, template_url, track_values, unified_to_composite, validate_room_composite,
                       validate_stream_urls, validate_web)
from .rooms import Rooms, find_track, require_participant, require_tracks
from .running import RunningEgresses

__all__ = ["EgressService", "MSG_SERVICE_RESTARTED", "NO_OPTIONS", "PAUSE_ACK_S", "StartOptions"]

log = logging.getLogger(__name__)
S = eg.EgressStatus


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
        # the config file's default destination and backup (ValueError names a bad key at startup)
        self.storage = from_config(settings.storage, "storage")
        self.backup = from_config(settings.backup, "backup")
        self.recordings_dir = Path(settings.recordings_dir).resolve()
        self.recordings_dir.mkdir(parents=True, exist_ok=True)
        self._listeners: list[Callable[[eg.EgressInfo], None]] = [metrics.EgressCounts()]
        self.rooms = Rooms(settings)
        # one CPU budget for every egress of this process, from its own API or from livekit-server
        self.admission = CpuAdmission(settings.cpu_cost)
        self.pool = HandlerPool(settings.handler_pool_size, settings.log_dir)  # its owner calls pool.start()
        self.jobs = RunningEgresses(settings, store, self.admission, self.pool, self._save)
        self.orphans: list[eg.EgressInfo] | None = None  # set by recover()

    def recover(self) -> list[eg.EgressInfo]:
        """End the egresses a previous run of the service left active: their handlers are gone. Each is
        read back from its files on disk, gets its manifests and ends EGRESS_FAILED through the same
        path as every other end (store, listeners, ``egress_ended`` webhook). Call it once listeners are
        added; later calls return the same list (a bus worker tells livekit-server about them too).
        Blocks while it reads files."""
        if self.orphans is not None:
            return self.orphans
        self.orphans = []
        for info in self.store.list(active=True):
            job = end_left_behind(info, JobRecord.load(self.store.get_job(info.egress_id)))
            with self.jobs.listed(job):  # for the listeners (is_external) while it is saved
                self._save(info)
            metrics.egress_left_behind(info)
            self.orphans.append(info)
            log.warning("egress %s was left running by a previous run: ended FAILED", info.egress_id)
        return self.orphans

    def add_listener(self, listener: Callable[[eg.EgressInfo], None]) -> None:
        """Call ``listener(info)`` after every stored change of any egress (the REST dialects follow
        their recordings this way); it must not block and gets the live message, so copy what it keeps."""
        self._listeners.append(listener)

    def get_info(self, egress_id: str) -> eg.EgressInfo | None:
        """The EgressInfo of ``egress_id`` (live while it runs), or None if unknown."""
        job = self.jobs.get(egress_id)
        return job.info if job is not None else self.store.get(egress_id)

    def active_egress_ids(self) -> list[str]:
        """Egresses with a running handler process."""
        return self.jobs.ids()

    def is_external(self, egress_id: str) -> bool:
        """True for an egress started with ``StartOptions(webhooks=False)`` (livekit-server's job)."""
        job = self.jobs.get(egress_id)
        return job is not None and job.external

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
        room_id, participants = await self.rooms.participants(req.room_name)
        require_participant(participants, req.identity, req.room_name)
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
        room_id, participants = await self.rooms.participants(req.room_name)
        require_tracks(participants, req.room_name, req.audio_track_id, req.video_track_id)
        return await self._start_composite(req, "track_composite", audio=bool(req.audio_track_id),
                                           video=bool(req.video_track_id), layout="grid", room_id=room_id, opts=opts,
                                           audio_track_id=req.audio_track_id, video_track_id=req.video_track_id)

    async def list_egress(self, req: eg.ListEgressRequest) -> eg.ListEgressResponse:
        """ListEgress: filter by ``room_name``, ``egress_id`` and ``active``, in the order they were created.

        A request with ``page_token`` set (livekit_egress.proto ``TokenPagination``; an empty token is
        the first page) gets ``list_egress_page_size`` items and, while more follow, ``next_page_token``;
        one without it gets every item, as livekit-server (which ignores ``page_token``) and clients that
        predate paging expect.
        """
        if not req.HasField("page_token"):
            return eg.ListEgressResponse(items=self.store.list(req.room_name, req.egress_id, req.active))
        secret = self.settings.api_secret
        items, last = self.store.page(req.room_name, req.egress_id, req.active, page_token.decode(secret, req),
                                      self.settings.list_egress_page_size)
        reply = eg.ListEgressResponse(items=items)
        if last is not None:
            reply.next_page_token.token = page_token.encode(secret, req, last)
        return reply

    async def stop_egress(self, req: eg.StopEgressRequest) -> eg.EgressInfo:
        """StopEgress: ask the handler to finish; returns the EgressInfo in EGRESS_ENDING.

        Raises:
            EgressError: ``not_found`` for an unknown id, ``failed_precondition``
                if the egress already ended.
        """
        info = self._get(req.egress_id)
        if info.status not in ACTIVE_STATUSES:
            raise EgressError("failed_precondition",
                              f"egress {req.egress_id} is {S.Name(info.status)}, not active", egress_id=req.egress_id)
        job = self.jobs.running(req.egress_id)
        if job is not None:
            await job.handler.send(Command(cmd="stop"))
            job.watch_ending(self.settings.ending_timeout_s)
        if info.status != S.EGRESS_ENDING:
            info.status = S.EGRESS_ENDING
            self._save(info)
        return info

    async def pause(self, egress_id: str) -> eg.EgressInfo:
        """Pause an active egress: nothing is recorded until :meth:`resume`, which continues the same
        outputs without a gap in their timeline. Returns once the handler has paused (at most
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
        job = self.jobs.get(egress_id)
        return job is not None and job.paused

    async def _set_paused(self, egress_id: str, paused: bool) -> eg.EgressInfo:
        info = self._get(egress_id)
        job = self.jobs.running(egress_id)
        if info.status != S.EGRESS_ACTIVE or job is None:
            raise EgressError("failed_precondition", f"egress {egress_id} is {S.Name(info.status)}, not active",
                              egress_id=egress_id)
        await job.set_paused(paused)
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
        await self.jobs.get(req.egress_id).handler.send(Command(cmd="layout", layout=req.layout))
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
        room_id, participants = await self.rooms.participants(req.room_name)
        identity, track = find_track(participants, req.track_id, req.room_name)
        passthrough = self.settings.track_receiver == "packets"
        encoding, files, websocket_url = resolve_track_egress(
            req, track, root=self.recordings_dir, storage=opts.upload or self.storage, passthrough=passthrough,
            values={"room_name": req.room_name, "room_id": room_id, **track_values(track, identity)})
        egress_id = opts.chosen_egress_id()
        is_audio = track.type == models.TrackType.AUDIO
        info = eg.EgressInfo(egress_id=egress_id, room_id=room_id, room_name=req.room_name,
                             source_type=eg.EgressSourceType.EGRESS_SOURCE_TYPE_SDK, status=S.EGRESS_STARTING)
        info.track.CopyFrom(redacted_request(req))
        # a file from the sdk path is re-encoded from the SDK's frames (track_receiver); a websocket's PCM
        # comes the way every decoding egress receives (composite_receiver)
        receiver = {"receiver": "sdk"} if files and not passthrough else {}
        spec = self._spec(egress_id, req.room_name, opts, source="track", track_id=req.track_id, audio=is_audio,
                          video=not is_audio, encoding=encoding, files=files, websocket_url=websocket_url,
                          empty_timeout_s=0, passthrough=passthrough and bool(files), **receiver)
        # TrackEgress reports its file in the legacy `file` too
        await self.jobs.launch(EgressJob(info, spec, legacy="file" if files else "", external=not opts.webhooks))
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
        if req.WhichOneof("encoding") == "preset" and req.preset == eg.EncodingOptionsPreset.PASSTHROUGH:
            return await self._start_passthrough(req, opts)
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
            audio, video, selection = media_selection(req.media)
            return await self._start_composite(shim, "media", audio=audio, video=video, layout="grid", request=req,
                                               opts=opts, **selection)
        if source == "web":
            w = req.web
            audio, video = validate_web(w.url, w.audio_only, w.video_only, field_prefix="web.")
            return await self._start_composite(shim, "web", audio=audio, video=video, layout="grid", request=req,
                                               opts=opts, web_url=w.url, await_start_signal=w.await_start_signal)
        raise invalid("template", "set a source: template, web or media")

    @admitted(track_cost)
    async def _start_passthrough(self, req: eg.StartEgressRequest, opts: StartOptions) -> eg.EgressInfo:
        """StartEgress with the ``PASSTHROUGH`` preset: one track's samples to a file unchanged.

        Raises:
            EgressError: ``invalid_argument`` for a request a remux cannot express (:func:`passthrough_track`)
                or an unsupported codec, ``not_found`` for an unknown track SID.
        """
        track_id = passthrough_track(req)
        room_id, participants = await self.rooms.participants(req.room_name)
        identity, track = find_track(participants, track_id, req.room_name)
        target = resolve_passthrough_egress(
            req, track, root=self.recordings_dir, storage=opts.upload or self.storage,
            values={"room_name": req.room_name, "room_id": room_id, **track_values(track, identity)})
        egress_id = opts.chosen_egress_id()
        is_audio = track.type == models.TrackType.AUDIO
        info = eg.EgressInfo(egress_id=egress_id, room_id=room_id, room_name=req.room_name,
                             source_type=eg.EgressSourceType.EGRESS_SOURCE_TYPE_SDK, status=S.EGRESS_STARTING)
        info.egress.CopyFrom(redacted_request(req))
        spec = self._spec(egress_id, req.room_name, opts, source="media", passthrough=True, audio=is_audio,
                          video=not is_audio, files=[target], empty_timeout_s=0,
                          **({"audio_routes": [AudioRoute(track_id=track_id)]} if is_audio
                             else {"video_track_id": track_id}))
        await self.jobs.launch(EgressJob(info, spec, external=not opts.webhooks))
        return info

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
        job = self.jobs.running(req.egress_id)
        if job is not None:
            await job.handler.send(Command(cmd="update_stream", add_urls=list(req.add_output_urls),
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
        """Resolve a composite-style request, create its EgressInfo and launch its handler.

        ``request`` is what EgressInfo echoes when ``req`` is a translation
        (StartEgress); ``kind`` is the request kind and the JobSpec source;
        ``room_id`` saves a lookup when the caller already has it. A
        ``template_base_url`` (a room composite's ``custom_base_url``) records
        that page with the room's template parameters instead of compositing.
        """
        encoding = resolve_encoding(req)
        room_name = getattr(req, "room_name", "")  # a web egress may have no room
        if kind != "web":
            room_id = room_id or opts.room_id or await self.rooms.room_sid(room_name)
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
        spec = self._spec(egress_id, room_name, opts, source="web" if template_base_url else kind, layout=layout,
                          audio=audio, video=video, encoding=encoding, files=outputs.files, segments=outputs.segments,
                          images=outputs.images, streams=outputs.streams, **source)
        if template_base_url:
            # The recorder's token is made for this egress ID; LiveKit's templates await START_RECORDING.
            spec.web_url = template_url(template_base_url, ws_url=spec.ws_url, token=spec.token, layout=layout)
            spec.await_start_signal = True
        for url in outputs.streams:  # listed from the start, as LiveKit does; the handler's reports refine them
            info.stream_results.add(url=redact_url(url), status=eg.StreamInfo.Status.ACTIVE)
        await self.jobs.launch(EgressJob(info, spec, legacy=outputs.legacy or "", external=not opts.webhooks))
        return info

    @staticmethod
    def _custom_template(req: eg.RoomCompositeEgressRequest) -> dict:
        """The ``_start_composite`` options that record a room through its ``custom_base_url`` page, if any."""
        return {"template_base_url": req.custom_base_url} if req.custom_base_url else {}

    def _spec(self, egress_id: str, room_name: str, opts: StartOptions, **fields) -> JobSpec:
        """A JobSpec with the service-wide parts filled in (:func:`~.job_spec.new_spec`)."""
        return new_spec(self.settings, self.backup, egress_id, room_name, opts, **fields)

    async def participants(self, room_name: str) -> tuple[str, list]:
        """The room's SID and participants (``livekit.ParticipantInfo``), for dialects that pick tracks.

        Raises:
            EgressError: ``not_found`` if the room does not exist, ``unavailable`` if livekit-server
                cannot be reached.
        """
        return await self.rooms.participants(room_name)

    def _get(self, egress_id: str) -> eg.EgressInfo:
        if not egress_id:
            raise invalid("egress_id", "is required")
        info = self.get_info(egress_id)
        if info is None:
            raise EgressError("not_found", f"egress {egress_id} not found", egress_id=egress_id)
        return info

    def _save(self, info: eg.EgressInfo) -> None:
        """Store ``info`` (``updated_at`` now), announce its status change and tell the listeners."""
        info.updated_at = time.time_ns()
        self.store.save(info)
        announce(self.webhooks, info, self.jobs.get(info.egress_id))
        for listener in self._listeners:
            try:
                listener(info)
            except Exception:  # a dialect's bookkeeping must never break the egress itself
                log.exception("egress listener failed for %s", info.egress_id)

    async def shutdown(self) -> None:
        """Stop every active egress and wait for the files to be finished; end the pool's idle processes."""
        await self.pool.close()
        await self.jobs.stop_all()
