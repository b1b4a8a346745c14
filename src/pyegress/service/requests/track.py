"""TrackEgress: one track to a file, or an audio track as PCM to a websocket."""

from __future__ import annotations

from pathlib import Path

from livekit.protocol import egress as eg
from livekit.protocol import models

from ...contract.encoding import EncodingSettings
from ...contract.job import FileTarget
from ...errors import invalid
from ...storage import AnyStorage
from .files import FORMAT_EXT
from .paths import Resolver
from .storage import upload_target
from .translate import unified_to_composite
from .websocket import validate_websocket_url


_TRACK_SOURCES = {0: "unknown", 1: "camera", 2: "microphone", 3: "screen_share", 4: "screen_share_audio"}


def track_values(track, identity: str) -> dict[str, str]:
    """Filename placeholder values of a track (``livekit.TrackInfo``) published by ``identity``."""
    return {"track_id": track.sid, "publisher_identity": identity,
            "track_type": "audio" if track.type == models.TrackType.AUDIO else "video",
            "track_source": _TRACK_SOURCES.get(track.source, "unknown")}


#: A track's codec → the container its samples are written to unchanged, as LiveKit's track egress
#: chooses (every audio track is Opus to a subscriber: the SFU strips RED).
PASSTHROUGH_FORMATS = {"opus": "ogg", "h264": "mp4", "vp8": "webm", "vp9": "webm"}
#: Extensions a file path may carry that name another container; they are replaced, as LiveKit does.
_KNOWN_EXTENSIONS = frozenset({*FORMAT_EXT.values(), ".ts", ".m3u8", ".ivf", ".raw", ".jpeg", ".jpg"})
DEFAULT_TRACK_NAME = "{track_id}-{time}"


def passthrough_format(track, field_name: str) -> str:
    """The container a track (``livekit.TrackInfo``) is written to unchanged (:data:`PASSTHROUGH_FORMATS`).

    Raises:
        EgressError: ``invalid_argument`` naming ``field_name`` for a codec no container here takes (AV1,
            which LiveKit's track egress also refuses).
    """
    if track.type == models.TrackType.AUDIO:
        return "ogg"
    codec = track.mime_type.lower().rpartition("/")[2]
    if codec not in PASSTHROUGH_FORMATS:
        raise invalid(field_name, f"{track.mime_type or 'an unknown codec'} is not yet supported")
    return PASSTHROUGH_FORMATS[codec]


def passthrough_file(filepath: str, fmt: str, r: Resolver, field_name: str, upload) -> FileTarget:
    """The file target of a track written unchanged: ``filepath`` (default ``{track_id}-{time}``) with the
    extension of ``fmt``; another container's extension is replaced, an unknown one kept and appended to
    (LiveKit's ``updateFilepath``).

    Raises:
        EgressError: ``invalid_argument`` naming ``field_name`` for a path that leaves the recordings root.
    """
    ext = FORMAT_EXT[fmt]
    template = filepath or DEFAULT_TRACK_NAME
    if not template.endswith("/") and not template.endswith(ext):
        suffix = template[template.rfind("."):] if "." in template.rpartition("/")[2] else ""
        template = (template[:-len(suffix)] if suffix.lower() in _KNOWN_EXTENSIONS else template) + ext
    elif template.endswith("/"):
        template += DEFAULT_TRACK_NAME + ext
    path = r.file(template, ext, field_name)
    return FileTarget(path=str(path), filename=r.relative(path), format=fmt, upload=upload)


def resolve_track_egress(req: eg.TrackEgressRequest, track, *, root: Path, values: dict[str, str],
                         storage: AnyStorage | None = None,
                         passthrough: bool = True) -> tuple[EncodingSettings, list[FileTarget], str]:
    """Encoding, file targets and websocket URL of a track egress for ``track`` (``livekit.TrackInfo``).

    With ``passthrough`` (the packet receiver) the file holds the publisher's own samples in the container
    their codec calls for (:func:`passthrough_format`); without it (the ``livekit`` SDK, which gives decoded
    media only) the track is re-encoded in its codec family at its size: audio → OGG/Opus, VP8 →
    WebM/VP8, anything else → MP4/H.264 (bitrate scaled from 3000 kbps at 720p). A websocket gets PCM.

    Raises:
        EgressError: ``invalid_argument`` for a missing or bad output or an unsupported codec.
    """
    is_audio = track.type == models.TrackType.AUDIO
    which = req.WhichOneof("output")
    if which is None:
        raise invalid("file", "set file or websocket_url")
    encoding = EncodingSettings(audio_codec="opus")
    if which == "websocket_url":
        return encoding, [], validate_websocket_url(req.websocket_url, is_audio=is_audio)
    upload = upload_target(req.file, "file", storage)
    r = Resolver(root, values)
    if passthrough:
        fmt = passthrough_format(track, "track_id")
        return encoding, [passthrough_file(req.file.filepath, fmt, r, "file.filepath", upload)], ""
    if is_audio:
        fmt = "ogg"
    elif "vp8" in track.mime_type.lower():
        fmt, encoding.video_codec = "webm", "vp8"
    else:
        fmt, encoding.audio_codec = "mp4", "aac"
    if not is_audio:
        encoding.width = max(16, (track.width or 1280) & ~1)
        encoding.height = max(16, (track.height or 720) & ~1)
        encoding.video_bitrate = max(300, round(3000 * encoding.width * encoding.height / (1280 * 720)))
    path = r.file(req.file.filepath or DEFAULT_TRACK_NAME, FORMAT_EXT[fmt], "file.filepath")
    return encoding, [FileTarget(path=str(path), filename=r.relative(path), format=fmt, upload=upload)], ""


def resolve_passthrough_egress(req: eg.StartEgressRequest, track, *, root: Path, values: dict[str, str],
                               storage: AnyStorage | None = None) -> FileTarget:
    """The file of a ``PASSTHROUGH`` StartEgress (already checked by ``passthrough_track``) for ``track``
    (``livekit.TrackInfo``): its one file output, in the container of the track's codec, uploaded where the
    output's ``storage``, else the request's, else ``storage`` says.

    Raises:
        EgressError: ``invalid_argument`` naming a bad path or storage field, or an unsupported codec.
    """
    shim = unified_to_composite(req)  # the output's storage resolved as for every StartEgress
    upload = upload_target(shim.file_outputs[0], "outputs[0]", storage)
    return passthrough_file(req.outputs[0].file.filepath, passthrough_format(track, "media"), Resolver(root, values),
                            "outputs[0].file.filepath", upload)
