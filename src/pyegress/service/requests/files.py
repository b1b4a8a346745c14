"""File outputs (``file_outputs`` / legacy ``file``): one container file, ``media/outputs/file.py``."""

from __future__ import annotations

from pathlib import Path

from livekit.protocol import egress as eg

from ...contract.encoding import EncodingSettings
from ...contract.job import FileTarget
from ...errors import invalid
from ...storage import AnyStorage
from .paths import DEFAULT_NAME, Resolver
from .storage import upload_target

FORMAT_EXT = {"mp4": ".mp4", "ogg": ".ogg", "webm": ".webm", "mp3": ".mp3"}
_AUDIO_ONLY_FORMATS = {"ogg": "opus", "mp3": "mp3"}  # container -> the audio codec it takes


def _file_format(out, field_name: str, *, video: bool, encoding: EncodingSettings, explicit_audio: bool) -> str:
    """The container of a file output: ``file_type``, else the filepath's extension, else by content."""
    f = f"{field_name}.file_type"
    by_type = {eg.EncodedFileType.MP4: "mp4", eg.EncodedFileType.OGG: "ogg",
               eg.EncodedFileType.MP3: "mp3"}.get(out.file_type)
    by_ext = {v: k for k, v in FORMAT_EXT.items()}.get(Path(out.filepath).suffix.lower())
    if by_type and by_ext and by_type != by_ext:
        raise invalid(f"{field_name}.filepath", f"extension {Path(out.filepath).suffix} does not match file_type "
                      f"{eg.EncodedFileType.Name(out.file_type)}")
    fmt = by_type or by_ext or ("webm" if video and encoding.video_codec == "vp8" else "mp4" if video else "ogg")
    if fmt in _AUDIO_ONLY_FORMATS and video:
        raise invalid(f, f"{fmt.upper()} holds audio only; set audio_only or use MP4")
    if fmt == "mp4" and video and encoding.video_codec == "vp8":
        raise invalid("advanced.video_codec", "VP8 cannot be written to MP4; use H.264 or a WebM file")
    if fmt == "webm" and video and encoding.video_codec != "vp8":
        raise invalid("advanced.video_codec", "WebM needs VP8 video")
    needed = _AUDIO_ONLY_FORMATS.get(fmt) or ("opus" if fmt == "webm" else None)
    if needed:
        if explicit_audio and encoding.audio_codec != needed:
            raise invalid("advanced.audio_codec", f"{fmt.upper()} needs {needed} audio")
        encoding.audio_codec = needed
    return fmt


def resolve_file(out, f: str, r: Resolver, *, storage: AnyStorage | None, video: bool, encoding: EncodingSettings,
                 explicit_audio: bool) -> FileTarget:
    """The target of the file output ``out`` (field ``f``), adjusting ``encoding``'s audio codec to its container.

    Raises:
        EgressError: ``invalid_argument`` naming the field.
    """
    upload = upload_target(out, f, storage)
    fmt = _file_format(out, f, video=video, encoding=encoding, explicit_audio=explicit_audio)
    path = r.file(out.filepath or DEFAULT_NAME, FORMAT_EXT[fmt], f"{f}.filepath")
    return FileTarget(path=str(path), filename=r.relative(path), format=fmt, upload=upload)
