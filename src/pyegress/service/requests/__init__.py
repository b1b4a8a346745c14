"""Validation and resolution of Egress API requests into what a handler executes.

One module per output kind, as ``media/outputs/`` has one per sink (and livekit/egress's
``pkg/config/output_*.go``): :mod:`.files`, :mod:`.segments`, :mod:`.images`, :mod:`.streams`,
:mod:`.websocket`; :mod:`.outputs` resolves a request's outputs through them. Around them:
:mod:`.encoding` (presets, advanced), :mod:`.storage` (upload destinations), :mod:`.paths`
(placeholders, confinement), :mod:`.web` (page URLs), :mod:`.composite` and :mod:`.track` (the
requests' own fields), :mod:`.translate` (StartEgress → room composite), :mod:`.redaction` (the
request EgressInfo echoes).

Every rule follows LiveKit's Egress API (``livekit_egress.proto``) and the wire shapes clients send
(``docs/wire.md``); each error is ``invalid_argument`` naming the field, or ``unimplemented`` for what
pyegress does not do yet.
"""

from .composite import validate_room_composite
from .encoding import resolve_encoding
from .outputs import ResolvedOutputs, request_outputs, resolve_outputs
from .redaction import redacted_request
from .storage import upload_target
from .streams import validate_stream_urls
from .track import resolve_passthrough_egress, resolve_track_egress, track_values
from .translate import media_selection, passthrough_track, unified_to_composite
from .web import split_url, template_url, validate_page_url, validate_web

__all__ = ["ResolvedOutputs", "media_selection", "passthrough_track", "redacted_request", "request_outputs",
           "resolve_encoding", "resolve_outputs", "resolve_passthrough_egress", "resolve_track_egress", "split_url", "template_url", "track_values", "unified_to_composite",
           "upload_target", "validate_page_url", "validate_room_composite", "validate_stream_urls", "validate_web"]
