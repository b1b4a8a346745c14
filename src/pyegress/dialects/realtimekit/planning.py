"""Which egresses a RealtimeKit recording starts (docs/realtimekit.md, "Composite" and "Track").

A composite recording is one room composite egress, plus an audio-only one for
``audio_config.export_file``; a track recording is one track composite egress per recorded
participant, layer and output. What pyegress does with each RealtimeKit option is said where it is
mapped; anything it cannot honour is refused with ``invalid_argument`` naming the field, never
silently dropped. Nothing here starts anything: :mod:`.service` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from livekit.protocol import egress as eg
from livekit.protocol import models

from ...errors import invalid
from ...service.egress_service import StartOptions
from ...service.requests.web import split_url, validate_page_url
from .models import AudioConfig, CompositeStart, Layer, LayerOutput, StorageConfig, TrackStart, VideoConfig
from .storage import join, object_dir, storage_target

_MAX_SIDE = 3840
EgressRequest = eg.RoomCompositeEgressRequest | eg.TrackCompositeEgressRequest


@dataclass(frozen=True)
class EgressStart:
    """One egress of a recording: its request, its role (``main``, or ``audio`` for the audio-only file of
    a composite) and the options it starts with (where it uploads)."""

    request: EgressRequest
    role: str
    options: StartOptions


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
    sends the files to :func:`storage_target` (:func:`composite_starts` passes it as ``StartOptions.upload``);
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

    base = join(object_dir(req.storage_config, req.meeting_id),
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



def composite_starts(req: CompositeStart, recording_id: str) -> list[EgressStart]:
    """The egresses of a composite recording (:func:`composite_requests`), all uploading to its
    ``storage_config`` if it has one.

    Raises:
        EgressError: ``invalid_argument`` naming the field pyegress cannot honour.
    """
    requests = composite_requests(req, recording_id)
    opts = StartOptions(upload=storage_target(req.storage_config) if req.storage_config else None)
    return [EgressStart(request, role, opts) for request, role in requests]


@dataclass
class TrackPlan:
    """A track recording's layers, kept to record participants who join later: per layer its media
    kind (``audio``/``video``), file name prefix and ``(start options, storage_config)`` per output."""

    rid: str
    meeting_id: str
    layers: list[tuple[str, str, list[tuple[StartOptions, StorageConfig | None]]]] = field(default_factory=list)
    recorded: set[str] = field(default_factory=set)  # identities already recorded

    @property
    def storage(self) -> StorageConfig | None:
        """The first ``storage_config`` of its outputs (the one a reply shows), None if all use the default."""
        return next((c for _, _, outputs in self.layers for _, c in outputs if c is not None), None)


def track_plan(req: TrackStart, recording_id: str) -> TrackPlan:
    """The plan of a track recording, its storage validated before anything starts.

    A layer's media is its ``media_kind``, else (5.0-5.2 layers have none) ``video`` for a layer named
    ``...video`` (such as ``default-video``) and ``audio`` otherwise; no ``layers`` means
    ``{"default": audio}`` (RealtimeKit: "records all participant audio").

    Raises:
        EgressError: ``invalid_argument`` naming the output's ``storage_config`` field.
    """
    plan = TrackPlan(recording_id, req.meeting_id)
    for name, layer in (req.layers or {"default": Layer(media_kind="audio")}).items():
        outputs = []
        for j, out in enumerate(layer.outputs or [LayerOutput()]):
            where = f"layers.{name}.outputs[{j}].storage_config"
            target = storage_target(out.storage_config, where) if out.type == "STORAGE_CONFIG" else None
            outputs.append((StartOptions(upload=target), out.storage_config))
        plan.layers.append((layer.media_kind or ("video" if name.endswith("video") else "audio"),
                            layer.file_name_prefix or name, outputs))
    return plan


def participant_starts(plan: TrackPlan, p) -> list[EgressStart]:
    """The egresses that record participant ``p`` (``livekit.ParticipantInfo``) in every layer and output
    of ``plan``: audio → the microphone as WebM/Opus (RealtimeKit's format); video → camera + microphone
    as MP4 H.264/AAC at the camera's size. None while it publishes nothing a layer records. Files are
    ``[<dir>/]<prefix>_<identity>_<id>.<ext>``."""
    starts = []
    for kind, prefix, outputs in plan.layers:
        mic = _track(p, models.TrackSource.MICROPHONE)
        cam = _track(p, models.TrackSource.CAMERA) if kind == "video" else None
        if mic is None and cam is None:
            continue
        for opts, config in outputs:
            base = join(object_dir(config, plan.meeting_id), f"{prefix}_{p.identity}_{plan.rid}")
            request = eg.TrackCompositeEgressRequest(
                room_name=plan.meeting_id, audio_track_id=mic.sid if mic else "",
                video_track_id=cam.sid if cam else "",
                file_outputs=[eg.EncodedFileOutput(filepath=base + (".mp4" if cam else ".webm"),
                                                   disable_manifest=True)])
            if cam is not None and cam.width and cam.height:
                request.advanced.CopyFrom(eg.EncodingOptions(width=cam.width & ~1, height=cam.height & ~1))
            starts.append(EgressStart(request, "main", opts))
    return starts


def _track(participant, source) -> object | None:
    """The participant's first track from ``source`` (``livekit.TrackInfo``), or None."""
    return next((t for t in participant.tracks if t.source == source), None)
