"""Validation and resolution of Egress API requests into what a worker executes.

Every rule here follows LiveKit's Egress API (seed 001, livekit_egress.proto)
and the wire facts in COMPAT.md; each error is ``invalid_argument`` naming the
field, or ``unimplemented`` for what pyegress does not do yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from livekit.protocol import egress as eg
from livekit.protocol import models

from ..errors import EgressError, invalid
from ..media.compose.layout import Layout
from ..media.encoding import PRESETS, EncodingSettings, from_preset
from ..worker.protocol import FileTarget
from .paths import confine, expand_placeholders, unique_path

_VIDEO_CODECS = {models.VideoCodec.DEFAULT_VC: "h264_main", models.VideoCodec.H264_BASELINE: "h264_baseline",
                 models.VideoCodec.H264_MAIN: "h264_main", models.VideoCodec.H264_HIGH: "h264_high",
                 models.VideoCodec.VP8: "vp8"}
_AUDIO_CODECS = {models.AudioCodec.DEFAULT_AC: "aac", models.AudioCodec.AAC: "aac", models.AudioCodec.OPUS: "opus"}


def resolve_encoding(req, field_prefix: str = "") -> EncodingSettings:
    """The encoding of a request with the ``options`` oneof (``preset`` | ``advanced``).

    No option at all means H264_720P_30; a ``preset`` present with value 0 is
    that same preset, chosen explicitly (COMPAT.md).

    Raises:
        EgressError: ``invalid_argument`` naming the offending field.
    """
    which = req.WhichOneof("options")
    if which is None:
        return EncodingSettings()
    if which == "preset":
        name = eg.EncodingOptionsPreset.Name(req.preset) if req.preset in eg.EncodingOptionsPreset.values() else ""
        if name not in PRESETS:
            raise invalid(f"{field_prefix}preset", f"{name or req.preset} is not a preset for transcoded egress")
        return from_preset(name)
    adv, base = req.advanced, EncodingSettings()
    f = f"{field_prefix}advanced"
    width, height = adv.width or base.width, adv.height or base.height
    for name, value in (("width", width), ("height", height)):
        if not 16 <= value <= 3840 or value % 2:
            raise invalid(f"{f}.{name}", f"must be an even number of pixels from 16 to 3840, got {value}")
    framerate = adv.framerate or base.framerate
    if not 1 <= framerate <= 60:
        raise invalid(f"{f}.framerate", f"must be 1 to 60 frames per second, got {framerate}")
    if adv.video_codec not in _VIDEO_CODECS:
        raise invalid(f"{f}.video_codec", f"unsupported video codec {adv.video_codec}")
    if adv.audio_codec not in _AUDIO_CODECS:
        raise invalid(f"{f}.audio_codec", f"unsupported audio codec {models.AudioCodec.Name(adv.audio_codec)}")
    frequency = adv.audio_frequency or base.audio_frequency
    if frequency not in (44100, 48000):
        raise invalid(f"{f}.audio_frequency", f"must be 44100 or 48000 Hz, got {frequency}")
    if adv.key_frame_interval < 0:
        raise invalid(f"{f}.key_frame_interval", "must not be negative")
    return EncodingSettings(
        width=width, height=height, depth=adv.depth or base.depth, framerate=framerate,
        video_codec=_VIDEO_CODECS[adv.video_codec], video_bitrate=adv.video_bitrate or base.video_bitrate,
        key_frame_interval=adv.key_frame_interval or base.key_frame_interval,
        audio_codec=_AUDIO_CODECS[adv.audio_codec], audio_bitrate=adv.audio_bitrate or base.audio_bitrate,
        audio_frequency=frequency)


@dataclass
class ResolvedOutputs:
    """Outputs of a request: local file targets, and whether the legacy ``file`` oneof was used."""

    files: list[FileTarget]
    legacy_file: bool


_UPLOAD_FIELDS = ("s3", "gcp", "azure", "aliOSS")


def resolve_outputs(req, *, root: Path, values: dict[str, str], audio: bool, video: bool,
                    encoding: EncodingSettings) -> ResolvedOutputs:
    """Resolve the outputs of a composite-style request (``file_outputs`` or legacy ``file``, ...).

    Node's SDK sends a bare output both in the legacy oneof and in the list
    (COMPAT.md): the legacy oneof counts only when the matching list is empty.

    Raises:
        EgressError: ``invalid_argument`` (bad or missing output, path escaping
            ``root``, codec/container mismatch) or ``unimplemented``.
    """
    legacy = req.WhichOneof("output")
    file_outputs = list(req.file_outputs)
    legacy_file = False
    if not file_outputs and legacy == "file":
        file_outputs, legacy_file = [req.file], True
    for kind in ("segment_outputs", "stream_outputs", "image_outputs"):
        if len(getattr(req, kind)):
            raise EgressError("unimplemented", f"{kind} are not supported yet; use file_outputs", argument=kind)
    if legacy in ("segments", "stream") and not file_outputs:
        raise EgressError("unimplemented", f"{legacy} output is not supported yet; use file_outputs", argument=legacy)
    if not file_outputs:
        raise invalid("file_outputs", "the request has no output; set file_outputs")
    if len(file_outputs) > 1:
        raise invalid("file_outputs", "only one file output is supported per egress (as LiveKit)")
    field = "file" if legacy_file else "file_outputs[0]"
    out = file_outputs[0]
    upload = out.WhichOneof("output")
    if upload in _UPLOAD_FIELDS:
        raise EgressError("unimplemented", f"{field}.{upload}: uploads are not supported yet; "
                          "omit it to record to the local recordings directory", argument=f"{field}.{upload}")
    if out.file_type == eg.EncodedFileType.MP3:
        raise EgressError("unimplemented", f"{field}.file_type: MP3 is not supported yet", argument=f"{field}.file_type")
    ext = {eg.EncodedFileType.OGG: ".ogg"}.get(out.file_type, ".mp4")
    if ext == ".ogg" and video:
        raise invalid(f"{field}.file_type", "OGG holds audio only; set audio_only or use MP4")
    if ext == ".mp4" and video and encoding.video_codec == "vp8":
        raise invalid("advanced.video_codec", "VP8 cannot be written to MP4")
    if ext == ".ogg" and encoding.audio_codec != "opus":
        encoding.audio_codec = "opus"
    template = out.filepath or "{room_name}-{time}"
    if template.endswith("/"):
        template += "{room_name}-{time}"
    relative = expand_placeholders(template, values)
    if not Path(relative).suffix:
        relative += ext
    path = unique_path(confine(root, relative, f"{field}.filepath"))
    filename = str(path.relative_to(Path(root).resolve()))
    return ResolvedOutputs([FileTarget(path=str(path), filename=filename)], legacy_file)


def validate_room_composite(req: eg.RoomCompositeEgressRequest) -> Layout:
    """Check the request's own fields; returns the parsed layout.

    Raises:
        EgressError: ``invalid_argument`` naming the field.
    """
    if not req.room_name:
        raise invalid("room_name", "is required")
    if req.audio_only and req.video_only:
        raise invalid("audio_only", "audio_only and video_only cannot both be set")
    if req.custom_base_url:
        raise EgressError("unimplemented", "custom_base_url: web templates are not supported; "
                          "pyegress composites without a browser", argument="custom_base_url")
    try:
        return Layout.parse(req.layout)
    except ValueError as e:
        raise invalid("layout", str(e)) from None
