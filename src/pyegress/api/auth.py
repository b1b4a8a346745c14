"""Authentication of API calls with LiveKit access tokens (JWT, HS256).

Verified with ``livekit-api``'s TokenVerifier against the configured key pair;
the Egress API requires the ``roomRecord`` video grant (LiveKit docs,
"Egress API": "Requests to the Egress API need the roomRecord permission").
"""

from __future__ import annotations

from livekit import api

from ..errors import EgressError


def verify_room_record(authorization: str | None, api_key: str, api_secret: str) -> api.Claims:
    """Return the claims of a ``Bearer`` token that carries ``roomRecord``.

    Raises:
        EgressError: ``unauthenticated`` (missing, malformed, wrongly signed,
            expired token) or ``permission_denied`` (no roomRecord grant).
    """
    if not authorization:
        raise EgressError("unauthenticated", "missing Authorization header with a LiveKit access token")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise EgressError("unauthenticated", "Authorization header must be 'Bearer <token>'")
    try:
        claims = api.TokenVerifier(api_key, api_secret).verify(token.strip())
    except Exception as e:  # jwt raises many types: bad signature, expired, wrong issuer, garbage
        raise EgressError("unauthenticated", f"invalid access token: {e}") from None
    if not (claims.video and claims.video.room_record):
        raise EgressError("permission_denied", "access token lacks the roomRecord grant")
    return claims


def bearer_user(authorization: str | None, api_key: str, api_secret: str) -> str:
    """The user a REST dialect call acts for: the identity (``sub``) of a LiveKit access token.

    The REST dialects (RTCstack, recordings API, RealtimeKit) take ``Authorization:
    Bearer <JWT>`` signed with the same key pair as the Egress API; the token's
    identity names the user, so each user sees only their own recordings.

    Raises:
        EgressError: ``unauthenticated`` for a missing, malformed or badly
            signed token, or one without an identity.
    """
    if not authorization:
        raise EgressError("unauthenticated", "missing Authorization header with a bearer token")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise EgressError("unauthenticated", "Authorization header must be 'Bearer <token>'")
    try:
        claims = api.TokenVerifier(api_key, api_secret).verify(token.strip())
    except Exception as e:  # jwt raises many types: bad signature, expired, wrong issuer, garbage
        raise EgressError("unauthenticated", f"invalid access token: {e}") from None
    if not claims.identity:
        raise EgressError("unauthenticated", "the access token has no identity (sub) naming the user")
    return claims.identity
