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
from .websocket import validate_websocket_url


_TRACK_SOURCES = {0: "unknown", 1: "camera", 2: "microphone", 3: "screen_share", 4: "screen_share_audio"}


def track_values(track, identity: str) -> dict[str, str]:
    """Filename placeholder values of a track (``livekit.TrackInfo``) published by ``identity``."""
    return {"track_id": track.sid, "publisher_identity": identity,
            "track_type": "audio" if track.type == models.TrackType.AUDIO else "video",
            "track_source": _TRACK_SOURCES.get(track.source, "unknown")}


def resolve_track_egress(req: eg.TrackEgressRequest, track, *, root: Path, values: dict[str, str],
                         storage: AnyStorage | None = None) -> tuple[EncodingSettings, list[FileTarget], str]:
    """Encoding, file targets and websocket URL of a track egress for ``track`` (``livekit.TrackInfo``).

    The SDK gives decoded media only, so tracks are re-encoded, keeping the
    codec family and resolution: audio → OGG/Opus, VP8 → WebM/VP8, anything
    else → MP4/H.264 at the track's size (bitrate scaled from 3000 kbps at 720p).

    Raises:
        EgressError: ``invalid_argument`` for a missing or bad output.
    """
    is_audio = track.type == models.TrackType.AUDIO
    which = req.WhichOneof("output")
    if which is None:
        raise invalid("file", "set file or websocket_url")
    encoding = EncodingSettings(audio_codec="opus")
    if which == "websocket_url":
        return encoding, [], validate_websocket_url(req.websocket_url, is_audio=is_audio)
    upload = upload_target(req.file, "file", storage)
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
    r = Resolver(root, values)
    path = r.file(req.file.filepath or "{track_id}-{time}", FORMAT_EXT[fmt], "file.filepath")
    return encoding, [FileTarget(path=str(path), filename=r.relative(path), format=fmt, upload=upload)], ""
