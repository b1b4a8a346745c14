"""Who may call pyegress: one rule for the Twirp Egress API and every REST dialect (docs/security.md).

A call carries ``Authorization: Bearer <LiveKit access token>``: a JWT signed (HS256) with the
configured key pair (``iss`` = API key, ``exp`` required, 60 s leeway: ``livekit-api``'s
TokenVerifier), whose video grant has ``roomRecord`` set to JSON ``true`` (LiveKit docs, "Egress
API": "Requests to the Egress API need the roomRecord permission"; a string such as ``"false"`` is
no grant). A token whose video grant names a ``room`` acts on that room only: starting, listing,
stopping or changing recordings of another room is ``permission_denied``. The REST dialects that keep
recordings per user (the recordings API, RealtimeKit) also need the token's identity (``sub``).

The claims are read raw, with PyJWT, because TokenVerifier copies grant values as they are (a
``"false"`` string would be truthy).
"""

from __future__ import annotations

from dataclasses import dataclass

import jwt
from fastapi import Request

from ..errors import EgressError

LEEWAY_S = 60  # livekit-api TokenVerifier's DEFAULT_LEEWAY


@dataclass(frozen=True)
class Caller:
    """An authorized caller: ``identity`` is the token's ``sub`` ("" if none); ``room`` the one room the
    token is limited to, "" for every room."""

    identity: str
    room: str = ""

    def check_room(self, room: str, field: str) -> None:
        """Refuse a call on ``room`` (named by the request's ``field``) unless the token may act on it.

        Raises:
            EgressError: ``permission_denied`` naming ``field`` when the token is limited to another room
                (or the call names no room, such as a web egress).
        """
        if self.room and room != self.room:
            raise EgressError("permission_denied", f"{field}: the access token is limited to room {self.room!r}",
                              argument=field)


def authorize(authorization: str | None, api_key: str, api_secret: str) -> Caller:
    """The caller of an ``Authorization: Bearer <token>`` header, under the rule of the module doc.

    Raises:
        EgressError: ``unauthenticated`` for a missing, malformed, wrongly signed or expired token;
            ``permission_denied`` for a token without ``roomRecord: true``.
    """
    if not authorization:
        raise EgressError("unauthenticated", "missing Authorization header with a LiveKit access token")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise EgressError("unauthenticated", "Authorization header must be 'Bearer <token>'")
    try:
        claims = jwt.decode(token.strip(), key=api_secret, issuer=api_key, algorithms=["HS256"], leeway=LEEWAY_S,
                            options={"require": ["exp"]})
    except jwt.PyJWTError as e:  # bad signature, expired, wrong issuer, garbage
        raise EgressError("unauthenticated", f"invalid access token: {e}") from None
    video = claims.get("video")
    if not isinstance(video, dict) or video.get("roomRecord") is not True:
        raise EgressError("permission_denied", "access token lacks the roomRecord grant")
    room, identity = video.get("room", ""), claims.get("sub", "")
    if not isinstance(room, str) or not isinstance(identity, str):
        raise EgressError("unauthenticated", "invalid access token: video.room and sub must be strings")
    return Caller(identity=identity, room=room)


class Authorizer:
    """The FastAPI dependency every route authorizes with: ``caller: Caller = Depends(Authorizer(...))``.

    ``identity=True`` also requires the token's ``sub``: the user whose recordings the call sees.
    Its errors are :class:`EgressError`, answered in the route's dialect by :mod:`pyegress.api.errors`.
    """

    def __init__(self, api_key: str, api_secret: str, *, identity: bool = False) -> None:
        self.api_key, self.api_secret, self.identity = api_key, api_secret, identity

    def __call__(self, request: Request) -> Caller:
        """The request's :class:`Caller`.

        Raises:
            EgressError: see :func:`authorize`; ``unauthenticated`` without an identity when one is needed.
        """
        caller = authorize(request.headers.get("authorization"), self.api_key, self.api_secret)
        if self.identity and not caller.identity:
            raise EgressError("unauthenticated", "the access token has no identity (sub) naming the user")
        return caller
