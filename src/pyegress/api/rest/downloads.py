"""Signed, expiring download URLs for recordings kept on local disk (the counterpart of a presigned S3 URL).

``/downloads/{key}?expires=<unix s>&signature=<hex>``, minted by
:func:`pyegress.dialects.links.signed_url`: the signature is HMAC-SHA256 over ``GET``, the key and
the expiry, keyed with the API secret, so only pyegress can mint a URL, and a changed key or expiry, or a URL past
its expiry, is refused with 403 (as S3 refuses a bad or expired presigned
URL). Keys are relative to the recordings directory and cannot leave it.
"""

from __future__ import annotations

import hmac
import time
from pathlib import Path

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response

from ...dialects.links import PREFIX, signed_url
from ...dialects.links import signature as url_signature
from ...errors import EgressError
from ...service.requests.paths import confine
from ...storage.base import content_type

__all__ = ["downloads_router", "signed_url"]


def downloads_router(secret: str, recordings_dir: Path) -> APIRouter:
    """``GET /downloads/{key}``: the file, if the URL's signature is valid and unexpired."""
    router = APIRouter(tags=["downloads"])

    @router.get(PREFIX + "{key:path}", response_class=FileResponse,
                responses={403: {"description": "bad or expired signature"}, 404: {"description": "no such file"}})
    async def download(key: str, expires: str = Query(""), signature: str = Query("")) -> Response:
        """Download a recording through a URL made by :func:`signed_url` (no Authorization header)."""
        # ASCII checks first: int() takes other scripts' digits and refuses over 4300 of them (an expiry
        # fits in 20); compare_digest refuses non-ASCII str
        if not (expires.isascii() and expires.isdigit() and len(expires) <= 20):
            raise EgressError("permission_denied", "the download URL's expires is not a Unix time", argument="expires")
        if not (signature.isascii() and hmac.compare_digest(signature, url_signature(secret, key, int(expires)))):
            raise EgressError("permission_denied", "the download URL's signature is not valid", argument="signature")
        if int(expires) < time.time():
            raise EgressError("permission_denied", "the download URL has expired")
        try:
            path = confine(recordings_dir, key, "key")
        except EgressError:
            path = None
        if path is None or not path.is_file():
            raise EgressError("not_found", "no such file")
        return FileResponse(path, media_type=content_type(path), filename=path.name)

    return router
