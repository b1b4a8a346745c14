"""Signed, expiring download URLs for recordings kept on local disk (the counterpart of a presigned S3 URL).

``/downloads/{key}?expires=<unix s>&signature=<hex>``: the signature is
HMAC-SHA256 over ``GET``, the key and the expiry, keyed with the API secret,
so only pyegress can mint a URL, and a changed key or expiry, or a URL past
its expiry, is refused with 403 (as S3 refuses a bad or expired presigned
URL). Keys are relative to the recordings directory and cannot leave it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response

from ...errors import EgressError
from ...service.requests.paths import confine
from ...storage.base import content_type
from . import error

PREFIX = "/downloads/"


def _signature(secret: str, key: str, expires: int) -> str:
    # A context label keeps these MACs distinct from any other use of the API secret.
    message = f"pyegress-download\nGET\n{key}\n{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_url(base_url: str, secret: str, key: str, expires_s: int, now: float | None = None) -> str:
    """A URL under ``base_url`` that downloads ``key`` (relative to the recordings directory) for
    ``expires_s`` seconds from ``now`` (Unix s, default the current time)."""
    expires = int((now if now is not None else time.time()) + expires_s)
    query = urlencode({"expires": expires, "signature": _signature(secret, key, expires)})
    return f"{base_url.rstrip('/')}{PREFIX}{quote(key)}?{query}"


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
            return error(403, "the download URL's expires is not a Unix time", "expires")
        if not (signature.isascii() and hmac.compare_digest(signature, _signature(secret, key, int(expires)))):
            return error(403, "the download URL's signature is not valid", "signature")
        if int(expires) < time.time():
            return error(403, "the download URL has expired")
        try:
            path = confine(recordings_dir, key, "key")
        except EgressError:
            return error(404, "no such file")
        if not path.is_file():
            return error(404, "no such file")
        return FileResponse(path, media_type=content_type(path), filename=path.name)

    return router
