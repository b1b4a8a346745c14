"""Live preview of an active egress's picture: ``GET /egress/{egress_id}/preview.jpg`` (the newest
composed frame as JPEG, at most 1280 pixels wide) and ``GET /egress/{egress_id}/preview.mjpeg`` (the same,
about once a second, as ``multipart/x-mixed-replace`` until the egress ends or the client goes).

Authorized as the Egress API is (:class:`~pyegress.api.auth.Authorizer`: ``roomRecord``; a token limited
to a room previews only that room's egresses, as StopEgress acts only on them). Errors are the REST
``{"error", "field"}`` body (:mod:`pyegress.api.errors`): 401, 403, and 404 for an egress that is unknown,
not active, or without video; 503 while its worker has written no picture yet.
"""

from __future__ import annotations

import re
from typing import AsyncIterator

from fastapi import APIRouter, Depends
from fastapi.responses import Response, StreamingResponse

from ..errors import EgressError
from ..service.egress_service import EgressService
from ..service.previews import Previews
from .auth import Authorizer, Caller

#: What an egress ID can be (``StartOptions.chosen_egress_id``); anything else is not found.
_EGRESS_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
BOUNDARY = "pyegress-preview"
NO_CACHE = {"Cache-Control": "no-store"}


def preview_router(service: EgressService, previews: Previews, api_key: str, api_secret: str) -> APIRouter:
    """The preview routes."""
    router = APIRouter()
    authorizer = Authorizer(api_key, api_secret)

    def check(egress_id: str, caller: Caller) -> None:
        """Refuse an egress the caller may not see; ``not_found`` for one that cannot exist or is unknown."""
        info = service.get_info(egress_id) if _EGRESS_ID.fullmatch(egress_id) else None
        if info is None:
            raise EgressError("not_found", f"egress {egress_id[:80]!r} not found", argument="egress_id")
        caller.check_room(info.room_name, "egress_id")
        previews.check(egress_id)

    @router.get("/egress/{egress_id}/preview.jpg", response_class=Response,
                responses={200: {"content": {"image/jpeg": {}}}})
    async def preview_jpeg(egress_id: str, caller: Caller = Depends(authorizer)) -> Response:
        check(egress_id, caller)
        return Response(await previews.latest(egress_id), media_type="image/jpeg", headers=NO_CACHE)

    @router.get("/egress/{egress_id}/preview.mjpeg", response_class=StreamingResponse,
                responses={200: {"content": {f"multipart/x-mixed-replace; boundary={BOUNDARY}": {}}}})
    async def preview_mjpeg(egress_id: str, caller: Caller = Depends(authorizer)) -> StreamingResponse:
        check(egress_id, caller)

        async def parts() -> AsyncIterator[bytes]:
            # a client that goes away fails the next send (at most a second later), which ends this
            async for jpeg in previews.stream(egress_id):
                yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                       .encode() + jpeg + b"\r\n")
            yield f"--{BOUNDARY}--\r\n".encode()

        return StreamingResponse(parts(), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                                 headers=NO_CACHE)

    return router
