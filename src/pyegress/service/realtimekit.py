"""Cloudflare RealtimeKit recordings on top of :class:`EgressService` (seed 004, COMPAT.md).

A RealtimeKit *meeting* is a LiveKit room (``meeting_id`` = room name) and its
*users* are the identities of the callers' access tokens. A composite recording
is one room composite egress (plus an audio-only one for
``audio_config.export_file``); a track recording is one track composite egress
per recorded participant, layer and output. The recording's status follows its
egresses through :meth:`EgressService.add_listener`:

==========================  =====================================
egresses                    RealtimeKit status
==========================  =====================================
all starting                INVOKED
any active                  RECORDING (PAUSED while paused)
none active, any ending     UPLOADING (outputs finishing, uploads)
all ended, a file complete  UPLOADED
all ended otherwise         ERRORED
==========================  =====================================

What pyegress does with RealtimeKit's options is said where each is mapped;
anything it cannot honour is refused with ``invalid_argument`` naming the field,
never silently dropped. Storage credentials go to the worker only: they are
neither stored nor echoed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from livekit.protocol import egress as eg
from livekit.protocol import models
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import EgressError, invalid
from ..storage import AzureStorage, GCSStorage, S3Storage, SFTPStorage, AnyStorage
from ..database.egress_store import ACTIVE_STATUSES
from ..database.realtimekit_store import RECORDING_STATUSES, RealtimeKitRecording, RealtimeKitStore
from ..contract.events import END_SOURCE_CLOSED
from ..contract.egress_info import end_details
from .egress_service import EgressService, StartOptions
from .web_requests import split_url, validate_page_url

log = logging.getLogger(__name__)
S = eg.EgressStatus
_FINAL = {S.EGRESS_COMPLETE, S.EGRESS_LIMIT_REACHED}
_PEERS_LEFT = end_details(END_SOURCE_CLOSED)  # the room or its tracks ended the egress
_MAX_SIDE = 3840
#: How often (s) a track recording without ``user_ids`` looks for participants to add.
JOIN_POLL_S = 2.0

# ---- request bodies (cloudflare SDK 5.x, realtime_kit.recordings) ---------------


def _lone_surrogate(value: Any) -> bool:
    """Whether a parsed JSON value holds a string UTF-8 cannot encode (JSON's ``"\\ud800"``)."""
    if isinstance(value, str):
        return not value.isascii() and any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, (list, tuple)):
        return any(_lone_surrogate(v) for v in value)
    if isinstance(value, dict):
        return any(_lone_surrogate(k) or _lone_surrogate(v) for k, v in value.items())
    return False


class _Body(BaseModel):
    # Extra keys pass: SDK 5.3+ sends the old ``outputs``/``max_seconds`` as extra body (COMPAT.md).
    model_config = ConfigDict(extra="ignore")

    @field_validator("*", mode="after")
    @classmethod
    def _text(cls, value: Any) -> Any:
        # strings end up in file names, the database and URLs, none of which take a lone surrogate
        if _lone_surrogate(value):
            raise ValueError("must be valid Unicode text (it has a lone surrogate)")
        return value


class StorageConfig(_Body):
    """RealtimeKit's ``storage_config``; ``access_key``, ``secret``, ``password`` and ``private_key`` are
    write-only (the SDK docs: "not readable by clients, only writeable")."""

    type: Literal["aws", "azure", "digitalocean", "gcs", "sftp"]
    access_key: str | None = None
    secret: str | None = None
    bucket: str | None = None
    region: str | None = None
    path: str | None = None
    host: str | None = None
    port: int | None = Field(None, ge=1, le=65535)  # the SDK types it float: 22.0 passes, 22.5 or Infinity not
    username: str | None = None
    password: str | None = None
    private_key: str | None = None
    auth_method: Literal["KEY", "PASSWORD"] | None = None

    def public(self) -> dict:
        """The fields a reply may show (RealtimeKit's recording object ``storage_config``)."""
        return self.model_dump(exclude={"access_key", "secret", "password", "private_key"}, exclude_none=True)


class LayerOutput(_Body):
    """Where a track recording layer goes (SDK 5.0-5.2): RealtimeKit's bucket or ``storage_config``."""

    type: Literal["REALTIMEKIT_BUCKET", "STORAGE_CONFIG"] = "REALTIMEKIT_BUCKET"
    storage_config: StorageConfig | None = None

    @model_validator(mode="after")
    def _config_present(self) -> "LayerOutput":
        if self.type == "STORAGE_CONFIG" and self.storage_config is None:
            raise ValueError("type STORAGE_CONFIG needs a storage_config")
        return self


class Layer(_Body):
    """A track recording layer: 5.0-5.2 ``file_name_prefix`` + ``outputs``; 5.3+ ``media_kind``."""

    file_name_prefix: str | None = None
    media_kind: Literal["audio", "video"] | None = None
    outputs: list[LayerOutput] | None = None


class TrackStart(_Body):
    """``POST recordings/track`` of either SDK generation."""

    meeting_id: str = Field(min_length=1)
    layers: dict[str, Layer] | None = None
    user_ids: list[str] | None = Field(None, max_length=100)
    max_seconds: float | None = Field(None, gt=0)


class AudioConfig(_Body):
    channel: Literal["mono", "stereo"] | None = None
    codec: Literal["MP3", "AAC"] | None = None
    export_file: bool | None = None


class VideoConfig(_Body):
    codec: Literal["H264", "VP8", "VP9"] | None = None
    width: int | None = None
    height: int | None = None
    export_file: bool | None = None
    watermark: dict | None = None


class RtmpOutConfig(_Body):
    rtmp_url: str | None = None


class BucketConfig(_Body):
    enabled: bool


class CompositeStart(_Body):
    """``POST recordings`` (start_recordings): a composite recording of the meeting."""

    meeting_id: str = Field(min_length=1)
    audio_config: AudioConfig | None = None
    video_config: VideoConfig | None = None
    storage_config: StorageConfig | None = None
    realtimekit_bucket_config: BucketConfig | None = None
    max_seconds: int | None = Field(None, ge=60, le=86400)  # "from 60 seconds to 24 hours" (SDK docs)
    file_name_prefix: str | None = None
    url: str | None = None
    rtmp_out_config: RtmpOutConfig | None = None
    interactive_config: dict | None = None
    allow_multiple_recordings: bool = False


class Action(_Body):
    """``PUT recordings/{id}`` (pause_resume_stop_recording)."""

    action: Literal["stop", "pause", "resume"]


# ---- storage -----------------------------------------------------------------------


def storage_target(config: StorageConfig, field: str = "storage_config") -> AnyStorage:
    """Where a RealtimeKit ``storage_config`` sends the files (object keys are the output paths).

    ``aws`` → S3 in ``region``; ``digitalocean`` → Spaces' S3 API at ``https://{region}.digitaloceanspaces.com``
    (DigitalOcean's documented endpoint); ``gcs`` → the bucket with ``secret`` as the service account's JSON
    key (RealtimeKit: no access key for gcs); ``azure`` → container ``bucket`` of account ``access_key``
    with ``secret`` as its key; ``sftp`` → ``host``:``port`` (22) as ``username``, with ``password``
    (``auth_method`` PASSWORD) or ``private_key`` (KEY; ``password`` then unlocks the key).

    Raises:
        EgressError: ``invalid_argument`` naming ``{field}.<name>`` for a missing field.
    """
    required = {"aws": ("bucket", "region", "access_key", "secret"), "digitalocean": ("bucket", "region",
                "access_key", "secret"), "gcs": ("bucket", "secret"), "azure": ("bucket", "access_key", "secret"),
                "sftp": ("host", "username", "private_key" if config.auth_method == "KEY" else "password")}
    for name in required[config.type]:
        if not getattr(config, name):
            raise invalid(f"{field}.{name}", f"is required for type {config.type!r}")
    if config.type in ("aws", "digitalocean"):
        endpoint = f"https://{config.region}.digitaloceanspaces.com" if config.type == "digitalocean" else ""
        return S3Storage(access_key=config.access_key, secret=config.secret, region=config.region,
                        bucket=config.bucket, endpoint=endpoint)
    if config.type == "gcs":
        return GCSStorage(bucket=config.bucket, credentials_json=config.secret)
    if config.type == "azure":
        return AzureStorage(account_name=config.access_key, account_key=config.secret, container_name=config.bucket)
    key = config.auth_method == "KEY"
    return SFTPStorage(host=config.host, port=config.port or 22, username=config.username,
                      password="" if key else config.password, private_key=config.private_key if key else "",
                      passphrase=config.password if key else "")


def _object_dir(config: StorageConfig | None, meeting_id: str) -> str:
    """Directory of a recording's files: ``storage_config.path`` in a bucket, else the meeting's name."""
    if config is not None:
        return (config.path or "").strip("/")
    return meeting_id


def _join(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory else name


def composite_requests(req: CompositeStart, recording_id: str) -> list[tuple[eg.RoomCompositeEgressRequest, str]]:
    """The room composite egress requests of a composite recording, each with its role (``main``,
    ``audio``); files are ``[<dir>/][<file_name_prefix>_]<recording_id>.<ext>``.

    ``video_config``: ``H264`` (default) → MP4 H.264 Main + AAC; ``VP8`` → WebM VP8 + Opus (as
    RealtimeKit, which switches the audio to a WebM codec for VP8/VP9); ``VP9`` is refused (no VP9
    encoder here). ``width``/``height`` default to 1280x720. ``audio_config``: stereo only; ``codec``
    is that of the separate audio-only file of ``export_file`` (MP3 → ``.mp3``, AAC → ``.m4a``).
    ``rtmp_out_config.rtmp_url`` also streams the composite (grid layout). ``url`` renders that page
    in Chromium instead of the built-in grid (LiveKit's ``custom_base_url``: the page gets ``url``,
    ``token``, ``layout`` query parameters and starts the recording with ``START_RECORDING``). ``storage_config``
    sends the files to :func:`storage_target` (the caller passes it as ``StartOptions.upload``);
    without it they go to pyegress's default storage.

    Raises:
        EgressError: ``invalid_argument`` naming the field pyegress cannot honour.
    """
    video = req.video_config or VideoConfig()
    audio = req.audio_config or AudioConfig()
    if req.interactive_config is not None:
        raise invalid("interactive_config", "is not supported by pyegress")
    if video.codec == "VP9":
        raise invalid("video_config.codec", "VP9 is not supported; use H264 or VP8")
    if video.watermark is not None:
        raise invalid("video_config.watermark", "watermarks are not supported")
    if audio.channel == "mono":
        raise invalid("audio_config.channel", "only stereo is supported")
    if video.codec == "VP8" and (req.rtmp_out_config or audio.codec):
        raise invalid("video_config.codec", "VP8 records WebM with Opus audio: RTMP and audio_config.codec "
                      "need H264")
    for name in ("width", "height"):
        value = getattr(video, name)
        if value is not None and (value % 2 or not 16 <= value <= _MAX_SIDE):
            raise invalid(f"video_config.{name}", f"must be an even number of pixels from 16 to {_MAX_SIDE}")

    base = _join(_object_dir(req.storage_config, req.meeting_id),
                 f"{req.file_name_prefix}_{recording_id}" if req.file_name_prefix else recording_id)
    vp8 = video.codec == "VP8"
    main = eg.RoomCompositeEgressRequest(
        room_name=req.meeting_id, layout="grid",
        advanced=eg.EncodingOptions(width=video.width or 1280, height=video.height or 720,
                                    video_codec=models.VideoCodec.VP8 if vp8 else models.VideoCodec.H264_MAIN,
                                    audio_codec=models.AudioCodec.OPUS if vp8 else models.AudioCodec.AAC),
        file_outputs=[eg.EncodedFileOutput(filepath=base + (".webm" if vp8 else ".mp4"), disable_manifest=True)])
    if req.url:  # RealtimeKit's custom recording page: rendered in Chromium, as LiveKit's custom_base_url
        validate_page_url(req.url, "url")
        main.custom_base_url = req.url
    if req.rtmp_out_config and req.rtmp_out_config.rtmp_url:
        rtmp = split_url(req.rtmp_out_config.rtmp_url, "rtmp_out_config.rtmp_url")
        if rtmp.scheme not in ("rtmp", "rtmps") or not rtmp.hostname:
            raise invalid("rtmp_out_config.rtmp_url", "must be an rtmp:// or rtmps:// URL")
        main.stream_outputs.add(protocol=eg.StreamProtocol.RTMP, urls=[req.rtmp_out_config.rtmp_url])
    requests = [(main, "main")]
    if audio.export_file:
        mp3 = audio.codec == "MP3"
        requests.append((eg.RoomCompositeEgressRequest(
            room_name=req.meeting_id, audio_only=True,
            advanced=eg.EncodingOptions(audio_codec=models.AudioCodec.AC_MP3 if mp3 else models.AudioCodec.AAC),
            file_outputs=[eg.EncodedFileOutput(
                filepath=base + (".mp3" if mp3 else ".m4a"), disable_manifest=True,
                file_type=eg.EncodedFileType.MP3 if mp3 else eg.EncodedFileType.MP4)]), "audio"))
    return requests


# ---- the dialect -------------------------------------------------------------------


class RealtimeKitRecordings:
    """Start, follow, list, pause/resume and stop RealtimeKit recordings for the users of the tokens.

    Every method scopes by ``user`` and (``account_id``, ``app_id``): a recording of another user is
    ``not_found``, as if it did not exist. Errors are :class:`EgressError` (``invalid_argument``
    names the RealtimeKit field in ``meta.argument``).
    """

    def __init__(self, service: EgressService, store: RealtimeKitStore) -> None:
        self.service = service
        self.store = store
        self._timers: dict[str, asyncio.TimerHandle] = {}  # live recording ID -> its max_seconds stop
        self._followers: dict[str, asyncio.Task] = {}  # live track recording ID -> its late-joiner poll
        self._ending: set[str] = set()  # recordings being stopped: no egress may join them any more
        self._reconcile()
        service.add_listener(self._on_egress)

    # ---- starting ----------------------------------------------------------------
    async def start_composite(self, user: str, account_id: str, app_id: str,
                              req: CompositeStart) -> RealtimeKitRecording:
        """Start a composite recording of ``req.meeting_id`` (see :func:`composite_requests`).

        Raises:
            EgressError: ``invalid_argument`` naming the field, ``failed_precondition`` if the meeting
                already has a live composite recording and ``allow_multiple_recordings`` is not set,
                ``not_found`` for a meeting that is not a room.
        """
        rid = str(uuid.uuid4())
        requests = composite_requests(req, rid)
        opts = StartOptions(upload=storage_target(req.storage_config) if req.storage_config else None)
        if not req.allow_multiple_recordings and self.store.live_in_meeting(req.meeting_id, "composite"):
            raise EgressError("failed_precondition", f"meeting_id: meeting {req.meeting_id!r} already has an "
                              "active recording; set allow_multiple_recordings to start another",
                              argument="meeting_id")
        infos = await self._start_all([(self.service.start_room_composite, r, role, opts) for r, role in requests])
        return self._create(rid, user, account_id, app_id, req.meeting_id, "composite", infos,
                            storage=req.storage_config, max_seconds=req.max_seconds,
                            bucket_download=req.realtimekit_bucket_config.enabled
                            if req.realtimekit_bucket_config else True)

    async def start_track(self, user: str, account_id: str, app_id: str, req: TrackStart) -> RealtimeKitRecording:
        """Start a track recording: for each layer, each recorded participant's tracks to each output.

        A layer's media is its ``media_kind``, else (5.0-5.2 layers have none) ``video`` for a layer
        named ``...video`` (the seed's ``default-video``) and ``audio`` otherwise; no ``layers`` means
        ``{"default": audio}`` (RealtimeKit: "records all participant audio"). Audio → the
        microphone as WebM/Opus (RealtimeKit's format); video → camera + microphone as MP4 H.264/AAC
        at the camera's size. ``user_ids`` limits the participants (identities); without it, every
        participant publishing such a track, including those who join (or first publish) while it
        records: the meeting is polled every :data:`JOIN_POLL_S` s. Files are
        ``[<dir>/]<prefix>_<identity>_<id>.<ext>`` with ``<prefix>`` the layer's ``file_name_prefix``
        or its name.

        Raises:
            EgressError: ``invalid_argument`` naming the field (an unknown user, nothing to record,
                bad storage), ``not_found`` for a meeting that is not a room.
        """
        layers = req.layers or {"default": Layer(media_kind="audio")}
        room_id, participants = await self.service.participants(req.meeting_id)
        present = {p.identity: p for p in participants}
        for i, uid in enumerate(req.user_ids or []):
            if uid not in present:
                raise invalid(f"user_ids[{i}]", f"participant {uid!r} is not in meeting {req.meeting_id!r}")
        chosen = [present[u] for u in req.user_ids] if req.user_ids else sorted(participants, key=lambda p: p.identity)
        plan = _TrackPlan(str(uuid.uuid4()), req.meeting_id)
        for name, layer in layers.items():
            outputs = []  # validated before anything starts
            for j, out in enumerate(layer.outputs or [LayerOutput()]):
                field = f"layers.{name}.outputs[{j}].storage_config"
                target = storage_target(out.storage_config, field) if out.type == "STORAGE_CONFIG" else None
                outputs.append((StartOptions(upload=target), out.storage_config))
            plan.layers.append((layer.media_kind or ("video" if name.endswith("video") else "audio"),
                                layer.file_name_prefix or name, outputs))
        starts = [start for p in chosen for start in self._participant_starts(plan, p)]
        if not starts:
            field = "user_ids" if req.user_ids else "meeting_id"
            raise invalid(field, f"no participant in meeting {req.meeting_id!r} publishes a track to record")
        infos = await self._start_all(starts)
        configs = [c for _, _, outputs in plan.layers for _, c in outputs if c is not None]
        row = self._create(plan.rid, user, account_id, app_id, req.meeting_id, "track", infos, session_id=room_id,
                           storage=configs[0] if configs else None, max_seconds=req.max_seconds)
        if not req.user_ids:
            self._followers[plan.rid] = asyncio.create_task(self._follow_joiners(plan), name=f"joiners-{plan.rid}")
        return row

    def _participant_starts(self, plan: "_TrackPlan", p) -> list:
        """The ``(method, request, role, options)`` that record participant ``p`` (``livekit.ParticipantInfo``)
        in every layer and output of ``plan``; none while it publishes nothing a layer records. Marks
        ``p`` recorded when there are some."""
        starts = []
        for kind, prefix, outputs in plan.layers:
            mic = _track(p, models.TrackSource.MICROPHONE)
            cam = _track(p, models.TrackSource.CAMERA) if kind == "video" else None
            if mic is None and cam is None:
                continue
            for opts, config in outputs:
                base = _join(_object_dir(config, plan.meeting_id), f"{prefix}_{p.identity}_{plan.rid}")
                request = eg.TrackCompositeEgressRequest(
                    room_name=plan.meeting_id, audio_track_id=mic.sid if mic else "",
                    video_track_id=cam.sid if cam else "",
                    file_outputs=[eg.EncodedFileOutput(filepath=base + (".mp4" if cam else ".webm"),
                                                       disable_manifest=True)])
                if cam is not None and cam.width and cam.height:
                    request.advanced.CopyFrom(eg.EncodingOptions(width=cam.width & ~1, height=cam.height & ~1))
                starts.append((self.service.start_track_composite, request, "main", opts))
        if starts:
            plan.recorded.add(p.identity)
        return starts

    async def _follow_joiners(self, plan: "_TrackPlan") -> None:
        """Record participants who were not in the meeting (or published nothing) when ``plan`` started,
        until the recording ends. While it is paused nobody is added (they are, once it resumes)."""
        while True:
            await asyncio.sleep(JOIN_POLL_S)
            row = self._joinable(plan.rid)
            if row is None:
                return
            if row.paused:
                continue
            try:
                _, participants = await self.service.participants(plan.meeting_id)
            except EgressError:  # the room is gone: its egresses end the recording
                return
            for p in participants:
                if p.identity in plan.recorded:
                    continue
                for method, request, role, opts in self._participant_starts(plan, p):
                    try:
                        info = await method(request, opts)
                    except EgressError as e:  # e.g. the track went again: this one is not recorded
                        log.warning("recording %s: cannot add %s: %s", plan.rid, p.identity, e.msg)
                        continue
                    self.store.link(plan.rid, info.egress_id, role)
                    log.info("recording %s: added %s (egress %s)", plan.rid, p.identity, info.egress_id)
                    if self._joinable(plan.rid) is None:  # stopped meanwhile, before this egress was linked
                        await self._stop_egress(info.egress_id)

    def _joinable(self, recording_id: str) -> RealtimeKitRecording | None:
        """The recording while participants may still join it (recording or paused, not being stopped)."""
        row = self.store.get(recording_id)
        if row is None or row.status not in RECORDING_STATUSES or recording_id in self._ending:
            return None
        return row

    async def _start_all(self, starts) -> list[tuple[eg.EgressInfo, str]]:
        """Start every ``(method, request, role, options)``; if one fails, stop those already started and
        re-raise."""
        started: list[tuple[eg.EgressInfo, str]] = []
        try:
            for method, request, role, opts in starts:
                started.append((await method(request, opts), role))
        except EgressError:
            for info, _ in started:
                await self._stop_egress(info.egress_id)
            raise
        return started

    def _create(self, rid: str, user: str, account_id: str, app_id: str, meeting_id: str, kind: str,
                infos: list[tuple[eg.EgressInfo, str]], *, storage: StorageConfig | None, max_seconds,
                session_id: str = "", bucket_download: bool = True) -> RealtimeKitRecording:
        main = next(i for i, role in infos if role == "main")
        request = getattr(main, main.WhichOneof("request"))
        row = RealtimeKitRecording(
            id=rid, user_id=user, account_id=account_id, app_id=app_id, meeting_id=meeting_id, kind=kind,
            status="INVOKED", paused=False, output_file_name=request.file_outputs[0].filepath.rsplit("/", 1)[-1],
            session_id=session_id or main.room_id, invoked_at=time.time_ns(), files=[],
            storage=storage.public() if storage else None, bucket_download=bucket_download,
            start_reason={"reason": "API_CALL", "caller": {"type": "USER", "name": user, "user_Id": user}},
            max_seconds=float(max_seconds or 0))
        self.store.add(row, [(i.egress_id, role) for i, role in infos])
        return self._refresh(rid)  # the egresses may have moved on while the row did not exist

    # ---- reading -----------------------------------------------------------------
    def get(self, user: str, account_id: str, app_id: str, recording_id: str) -> RealtimeKitRecording:
        """A recording of this user and app.

        Raises:
            EgressError: ``not_found`` for an unknown ID or another user's or app's recording.
        """
        row = self.store.get(recording_id)
        if row is None or (row.user_id, row.account_id, row.app_id) != (user, account_id, app_id):
            raise EgressError("not_found", f"recording {recording_id} not found", argument="recording_id")
        return row

    def active(self, user: str, account_id: str, app_id: str, meeting_id: str) -> RealtimeKitRecording:
        """The user's newest composite recording of ``meeting_id`` that is recording or paused.

        Raises:
            EgressError: ``not_found`` when there is none.
        """
        rows, _ = self.store.query(user=user, account_id=account_id, app_id=app_id, meeting_id=meeting_id,
                                   statuses=list(RECORDING_STATUSES), kind="composite", limit=1)
        if not rows:
            raise EgressError("not_found", f"meeting {meeting_id!r} has no active recording", argument="meeting_id")
        return rows[0]

    # ---- control -----------------------------------------------------------------
    async def act(self, user: str, account_id: str, app_id: str, recording_id: str,
                  action: str) -> RealtimeKitRecording:
        """``stop`` (stop_reason API_CALL by this user), ``pause`` (status PAUSED: nothing is recorded)
        or ``resume`` (the same files continue without a gap in their timeline).

        Raises:
            EgressError: ``not_found``; ``failed_precondition`` when the recording has ended (any action)
                or is not recording yet (pause/resume).
        """
        row = self.get(user, account_id, app_id, recording_id)
        if row.status not in RECORDING_STATUSES:
            raise EgressError("failed_precondition", f"recording {recording_id} is {row.status}, not active",
                              argument="action")
        if action == "stop":
            row.stop_reason = {"reason": "API_CALL", "caller": {"type": "USER", "name": user, "user_Id": user}}
            self.store.save(row)
            await self._stop_all(recording_id)
            return self._refresh(recording_id)
        if row.status == "INVOKED":
            raise EgressError("failed_precondition", f"recording {recording_id} has not started recording yet",
                              argument="action")
        for egress_id, _ in self.store.egresses(recording_id):
            if self.service.is_paused(egress_id) != (action == "pause"):
                try:
                    await (self.service.pause if action == "pause" else self.service.resume)(egress_id)
                except EgressError as e:  # that egress has just ended: the others still follow the action
                    log.info("recording %s: %s of %s skipped: %s", recording_id, action, egress_id, e.msg)
        row.paused = action == "pause"
        self.store.save(row)
        return self._refresh(recording_id)

    async def _stop_all(self, recording_id: str) -> None:
        self._ending.add(recording_id)
        for egress_id, _ in self.store.egresses(recording_id):
            await self._stop_egress(egress_id)

    async def _stop_egress(self, egress_id: str) -> None:
        try:
            await self.service.stop_egress(eg.StopEgressRequest(egress_id=egress_id))
        except EgressError:  # already ended: nothing to stop
            pass

    # ---- following the egresses ----------------------------------------------------
    def _on_egress(self, info: eg.EgressInfo) -> None:
        recording_id = self.store.recording_of(info.egress_id)
        if recording_id is not None:
            self._refresh(recording_id)

    def _reconcile(self) -> None:
        """Recordings left live by a previous run follow their egresses' stored state (failed by now)."""
        for row in self.store.live():
            self._refresh(row.id)

    def _refresh(self, recording_id: str) -> RealtimeKitRecording:
        """Recompute a recording from its egresses' stored EgressInfo and save it."""
        row = self.store.get(recording_id)
        links = self.store.egresses(recording_id)
        infos = [(self.service.store.get(e), role) for e, role in links]
        infos = [(i, role) for i, role in infos if i is not None]
        statuses = [i.status for i, _ in infos]
        if statuses and all(s not in ACTIVE_STATUSES for s in statuses):
            ok = any(i.status in _FINAL for i, role in infos if role == "main")
            row.status = "UPLOADED" if ok else "ERRORED"
            row.stopped_at = max(i.ended_at for i, _ in infos) or time.time_ns()
            row.paused = False
            if row.stop_reason is None and not ok:
                row.stop_reason = {"reason": "INTERNAL_ERROR"}
            elif row.stop_reason is None and any(i.details.startswith(_PEERS_LEFT) for i, _ in infos):
                row.stop_reason = {"reason": "ALL_PEERS_LEFT"}
            row.error = next((i.error for i, _ in infos if i.error), "")
            timer = self._timers.pop(recording_id, None)
            if timer is not None:
                timer.cancel()
            # not cancelled: it may be starting an egress; it sees the end at its next poll and returns
            self._followers.pop(recording_id, None)
            self._ending.discard(recording_id)
        elif S.EGRESS_ACTIVE in statuses:
            row.status = "PAUSED" if row.paused else "RECORDING"
            if row.max_seconds and recording_id not in self._timers:
                # counted from when recording starts (starting a worker can take seconds), pauses included
                self._timers[recording_id] = asyncio.get_running_loop().call_later(
                    row.max_seconds, lambda: asyncio.ensure_future(self._stop_all(recording_id)))
        elif S.EGRESS_ENDING in statuses:
            row.status = "UPLOADING"
        starts = [i.started_at for i, _ in infos if i.started_at]
        row.started_at = min(starts) if starts else None
        row.session_id = row.session_id or next((i.room_id for i, _ in infos if i.room_id), "")
        row.files = [{"filename": f.filename, "location": f.location, "size": f.size, "role": role}
                     for i, role in infos for f in i.file_results]
        main_files = [f for i, role in infos if role == "main" for f in i.file_results]
        row.file_size = sum(f.size for f in main_files) if main_files else None
        row.duration_s = max(f.duration for f in main_files) / 1e9 if main_files else None
        self.store.save(row)
        return row


@dataclass
class _TrackPlan:
    """A track recording's layers, kept to record participants who join later: per layer its media
    kind (``audio``/``video``), file name prefix and ``(start options, storage_config)`` per output."""

    rid: str
    meeting_id: str
    layers: list[tuple[str, str, list[tuple[StartOptions, "StorageConfig | None"]]]] = field(default_factory=list)
    recorded: set[str] = field(default_factory=set)  # identities already recorded


def _track(participant, source) -> object | None:
    """The participant's first track from ``source`` (``livekit.TrackInfo``), or None."""
    return next((t for t in participant.tracks if t.source == source), None)
