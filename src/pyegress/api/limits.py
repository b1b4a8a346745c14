"""A cap on request bodies (``PYEGRESS_MAX_BODY_BYTES``), as ASGI middleware in front of every route.

A request whose ``Content-Length`` is over the cap is answered 413 before any of its body is read;
one without a length (chunked) is counted as it streams and refused with 413 at the first byte over
the cap, so an oversized body is never held whole in memory. The 413 is in the dialect of the path
(:mod:`pyegress.api.errors`): Twirp ``resource_exhausted``, the REST dialects' own error bodies.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import EgressError
from .errors import render


class BodyLimit:
    """ASGI middleware refusing request bodies over ``max_bytes`` with 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _message(self) -> str:
        return f"the request body is larger than {self.max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")
        # the server has already refused a non-numeric Content-Length; a huge one is compared as text
        if length.isdigit() and (len(length) > 18 or int(length) > self.max_bytes):
            error = EgressError("resource_exhausted", self._message(), limit=str(self.max_bytes))
            await render(scope["path"], error, 413)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # raised inside the route's body read: the app's HTTP error handler answers 413
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, counted, send)
