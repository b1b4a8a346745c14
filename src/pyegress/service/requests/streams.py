"""Stream outputs (``stream_outputs`` / legacy ``stream``): RTMP(S) and SRT URLs, ``media/outputs/stream.py``."""

from __future__ import annotations

from livekit.protocol import egress as eg

from ...contract.encoding import EncodingSettings
from ...contract.streams import srt_available
from ...errors import EgressError, invalid
from .web import split_url


def resolve_stream(out, f: str, *, audio: bool, video: bool, encoding: EncodingSettings) -> list[str]:
    """The URLs of the stream output ``out`` (field ``f``), checked against its ``protocol`` and the codecs.

    Raises:
        EgressError: ``invalid_argument`` naming the field, ``unimplemented`` for SRT without libsrt.
    """
    protocol = {eg.StreamProtocol.SRT: "srt", eg.StreamProtocol.RTMP: "rtmp"}.get(out.protocol)
    urls = validate_stream_urls(list(out.urls), f"{f}.urls", protocol=protocol)
    if video and encoding.video_codec == "vp8":
        raise invalid("advanced.video_codec", "RTMP streams need H.264 video")
    if audio and encoding.audio_codec != "aac":
        raise invalid("advanced.audio_codec", "RTMP streams need AAC audio")
    return urls


def validate_stream_urls(urls: list[str], field_name: str, *, protocol: str | None = None) -> list[str]:
    """Check stream URLs: ``rtmp://`` or ``rtmps://`` with a host, or ``srt://host:port`` (caller mode,
    query options such as ``streamid`` and ``passphrase`` passed on to libsrt). ``protocol`` (``"rtmp"``
    or ``"srt"``, from StreamOutput.protocol) requires every URL to be of that kind.

    Raises:
        EgressError: ``invalid_argument`` naming ``field_name[i]``, or ``unimplemented`` for SRT
            when no ``ffmpeg`` with libsrt is installed.
    """
    if not urls:
        raise invalid(field_name, "needs at least one URL")
    for i, url in enumerate(urls):
        parts = split_url(url, f"{field_name}[{i}]")
        kind = "srt" if parts.scheme == "srt" else "rtmp"
        if protocol and kind != protocol:
            raise invalid(f"{field_name}[{i}]", f"must be an {protocol}:// URL for protocol {protocol.upper()}, "
                                                f"got scheme {parts.scheme!r}")
        if kind == "srt":
            if not parts.hostname or not parts.port:
                raise invalid(f"{field_name}[{i}]", "must be srt://host:port")
            if not srt_available():
                raise EgressError("unimplemented", f"{field_name}[{i}]: SRT needs an ffmpeg with libsrt on PATH",
                                  argument=f"{field_name}[{i}]")
        elif parts.scheme not in ("rtmp", "rtmps") or not parts.hostname:
            raise invalid(f"{field_name}[{i}]",
                          f"must be an rtmp://, rtmps:// or srt:// URL, got scheme {parts.scheme!r}")
    return urls
