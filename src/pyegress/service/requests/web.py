"""Web egress requests: a URL recorded as Chromium renders it.

Three requests lead here: ``StartWebEgress`` (livekit.WebEgressRequest), the
unified ``StartEgress`` with a ``web`` source (livekit.WebSource), and a room
composite with ``custom_base_url`` — LiveKit's own way of recording a room
through a custom web template.
"""

from __future__ import annotations

from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

from ...errors import invalid


def validate_web(url: str, audio_only: bool, video_only: bool, field_prefix: str = "") -> tuple[bool, bool]:
    """Check a web source; returns ``(audio, video)``: what is recorded.

    Raises:
        EgressError: ``invalid_argument`` naming ``url`` (missing, or not an
            ``http(s)://`` URL with a host) or ``audio_only`` (both only-flags set).
    """
    validate_page_url(url, f"{field_prefix}url")
    if audio_only and video_only:
        raise invalid(f"{field_prefix}audio_only", "audio_only and video_only cannot both be set")
    return not video_only, not audio_only


def split_url(url: str, field_name: str) -> SplitResult:
    """``urlsplit`` of a URL from a request, its port checked too: every URL a request carries is read
    through here, so one urllib cannot parse is the client's error, not the service's.

    Raises:
        EgressError: ``invalid_argument`` naming ``field_name`` for a URL urllib refuses (an unclosed
            ``[`` of an IPv6 host, a port that is not a number from 0 to 65535).
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (parsed lazily: raises here or never)
    except ValueError as e:
        raise invalid(field_name, f"is not a valid URL: {e}") from None
    return parts


def validate_page_url(url: str, field_name: str) -> None:
    """``url`` must be an ``http://`` or ``https://`` URL with a host: a page a browser can load.

    Raises:
        EgressError: ``invalid_argument`` naming ``field_name``.
    """
    if not url:
        raise invalid(field_name, "is required")
    parts = split_url(url, field_name)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid(field_name, f"must be an http:// or https:// URL with a host, got scheme {parts.scheme!r}")


def template_url(base_url: str, *, ws_url: str, token: str, layout: str) -> str:
    """``base_url`` with LiveKit's template query parameters: ``url`` (the LiveKit server's websocket URL),
    ``token`` (a hidden recorder's token for the room) and ``layout``, replacing any the URL already has
    (as LiveKit's egress builds it, livekit/egress ``pkg/pipeline/source/web.go``)."""
    parts = urlsplit(base_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ("url", "token", "layout")]
    query += [("layout", layout), ("url", ws_url), ("token", token)]
    return urlunsplit(parts._replace(query=urlencode(query)))
