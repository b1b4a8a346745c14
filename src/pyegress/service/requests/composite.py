"""A room composite request's own fields (room, audio/video flags, layout, template page)."""

from __future__ import annotations

from livekit.protocol import egress as eg

from ...contract.layouts import Layout
from ...errors import invalid
from .web import validate_page_url


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
        validate_page_url(req.custom_base_url, "custom_base_url")
    try:
        return Layout.parse(req.layout)
    except ValueError as e:
        raise invalid("layout", str(e)) from None
