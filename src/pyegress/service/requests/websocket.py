"""Websocket output of a track egress (``websocket_url``): raw PCM, ``media/outputs/websocket.py``."""

from __future__ import annotations

from ...errors import invalid
from .web import split_url


def validate_websocket_url(url: str, *, is_audio: bool) -> str:
    """``url`` if it is a ``ws://``/``wss://`` URL with a host and the track is audio.

    Raises:
        EgressError: ``invalid_argument`` naming ``websocket_url``.
    """
    parts = split_url(url, "websocket_url")
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise invalid("websocket_url", f"must be a ws:// or wss:// URL, got scheme {parts.scheme!r}")
    if not is_audio:
        raise invalid("websocket_url", "only audio tracks can be sent to a websocket")
    return url
