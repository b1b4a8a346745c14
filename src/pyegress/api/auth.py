"""Authentication of API calls with LiveKit access tokens (JWT, HS256).

Verified with ``livekit-api``'s TokenVerifier against the configured key pair;
the Egress API requires the ``roomRecord`` video grant (LiveKit docs,
"Egress API": "Requests to the Egress API need the roomRecord permission").
"""

from __future__ import annotations

from livekit import api

from ..errors import EgressError


def bearer_claims(authorization: str | None, api_key: str, api_secret: str) -> api.Claims:
    """The verified claims of an ``Authorization: Bearer <LiveKit access token>`` header.

    Raises:
        EgressError: ``unauthenticated`` for a missing, malformed, wrongly
            signed or expired token.
    """
    if not authorization:
        raise EgressError("unauthenticated", "missing Authorization header with a LiveKit access token")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise EgressError("unauthenticated", "Authorization header must be 'Bearer <token>'")
    try:
        return api.TokenVerifier(api_key, api_secret).verify(token.strip())
    except Exception as e:  # jwt raises many types: bad signature, expired, wrong issuer, garbage
        raise EgressError("unauthenticated", f"invalid access token: {e}") from None


def verify_room_record(authorization: str | None, api_key: str, api_secret: str) -> api.Claims:
    """Return the claims of a ``Bearer`` token that carries ``roomRecord``.

    Raises:
        EgressError: ``unauthenticated`` (see :func:`bearer_claims`) or
            ``permission_denied`` (no roomRecord grant).
    """
    claims = bearer_claims(authorization, api_key, api_secret)
    if not (claims.video and claims.video.room_record):
        raise EgressError("permission_denied", "access token lacks the roomRecord grant")
    return claims


def bearer_user(authorization: str | None, api_key: str, api_secret: str) -> str:
    """The user a REST dialect call acts for: the identity (``sub``) of a LiveKit access token.

    The REST dialects (RTCstack, recordings API, RealtimeKit) take ``Authorization:
    Bearer <JWT>`` signed with the same key pair as the Egress API; the token's
    identity names the user, so each user sees only their own recordings.

    Raises:
        EgressError: ``unauthenticated`` (see :func:`bearer_claims`), or for a
            token without an identity.
    """
    claims = bearer_claims(authorization, api_key, api_secret)
    if not claims.identity:
        raise EgressError("unauthenticated", "the access token has no identity (sub) naming the user")
    return claims.identity
