"""Download links for finished recordings, as the REST dialects hand them out (docs/security.md,
"Download links").

A file on local disk (no upload, or the backup of a failed one) gets a signed pyegress URL,
``{public_url}/downloads/{key}?expires=<unix s>&signature=<hex>``: HMAC-SHA256 over ``GET``, the key
and the expiry, keyed with the API secret and a context label, so only pyegress can mint one and a
changed key or expiry is refused (``api/rest/downloads.py`` serves and checks them). A file in
pyegress's default storage gets that storage's presigned URL; one in the caller's own bucket none.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from urllib.parse import quote, urlencode

from ..storage import AnyStorage

log = logging.getLogger(__name__)

PREFIX = "/downloads/"


def signature(secret: str, key: str, expires: int) -> str:
    """The hex HMAC of a download URL for ``key`` valid until ``expires`` (Unix s)."""
    # A context label keeps these MACs distinct from any other use of the API secret.
    message = f"pyegress-download\nGET\n{key}\n{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_url(base_url: str, secret: str, key: str, expires_s: int, now: float | None = None) -> str:
    """A URL under ``base_url`` that downloads ``key`` (relative to the recordings directory) for
    ``expires_s`` seconds from ``now`` (Unix s, default the current time)."""
    expires = int((now if now is not None else time.time()) + expires_s)
    query = urlencode({"expires": expires, "signature": signature(secret, key, expires)})
    return f"{base_url.rstrip('/')}{PREFIX}{quote(key)}?{query}"


class DownloadLinks:
    """Links to finished files: signed under ``public_url`` for local ones, presigned by ``storage`` (pyegress's
    default storage, None when files stay local) for uploaded ones."""

    def __init__(self, public_url: str, secret: str, storage: AnyStorage | None) -> None:
        self.public_url, self.secret, self.storage = public_url, secret, storage

    def url(self, key: str, local: bool, ttl_s: int, *, own_storage: bool = False) -> str | None:
        """A URL for ``key`` valid ``ttl_s``, or None if pyegress cannot give one: the file is in the caller's
        ``own_storage``, there is no default storage, or its credentials cannot sign (logged)."""
        if local:
            return signed_url(self.public_url, self.secret, key, ttl_s)
        if own_storage or self.storage is None:
            return None
        try:
            return self.storage.presign(key, ttl_s)
        except Exception as e:  # credentials that cannot sign: the recording is still shown, without a URL
            log.warning("cannot presign %s: %s", key, e)
            return None
