"""What every storage destination shares: retried uploads, object keys under a prefix, content types.

A destination is a pydantic model (so it travels in a JobSpec as JSON) with
``upload(path, key)``, ``location(key)``, ``presign(key, expires_s)`` and
``delete(key)``. Keys are relative object names (``room/file.mp4``); the
destination's ``prefix`` (LiveKit's ``storage.prefix``) is put in front of
every key. Uploads block: call them from a thread, never from an event loop.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Callable
from urllib.parse import quote, urlsplit, urlunsplit

import obstore
from pydantic import BaseModel, Field

from .local import open_existing

log = logging.getLogger(__name__)

_CONTENT_TYPES = {".mp4": "video/mp4", ".webm": "video/webm", ".ogg": "audio/ogg", ".mp3": "audio/mpeg",
                  ".ts": "video/mp2t", ".m4s": "video/iso.segment", ".m3u8": "application/x-mpegURL", ".jpeg": "image/jpeg",
                  ".jpg": "image/jpeg", ".json": "application/json"}

# obstore retries inside each request too (connection errors, 5xx); keep that short so the attempts
# and backoff of Storage.upload are what a user configures (PYEGRESS_UPLOAD_ATTEMPTS / _RETRY_BASE_S).
RETRY_CONFIG = {"max_retries": 2, "retry_timeout": timedelta(seconds=10),
                "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=1)}}
CLIENT_TIMEOUTS = {"connect_timeout": "5s", "timeout": "120s"}


def content_type(path: Path | str) -> str:
    """The Content-Type an output file is stored with, by its extension."""
    return _CONTENT_TYPES.get(Path(path).suffix.lower(), "application/octet-stream")


class Storage(BaseModel):
    """A storage destination; subclasses implement :meth:`_put`, :meth:`_object_location` and may
    override :meth:`presign` and :meth:`delete`."""

    prefix: str = ""  # put in front of every key (LiveKit's storage.prefix)

    def key(self, key: str) -> str:
        """The full object name of ``key``: ``prefix`` + ``key``, with no leading slash."""
        if not self.prefix:
            return key.lstrip("/")
        return f"{self.prefix.strip('/')}/{key.lstrip('/')}"

    def describe(self) -> str:
        """Where this destination is, for logs (never credentials)."""
        raise NotImplementedError

    def _put(self, path: Path, key: str) -> None:
        """Store ``path`` as the full object name ``key``; raises on any failure."""
        raise NotImplementedError

    def _object_location(self, key: str) -> str:
        raise NotImplementedError

    def location(self, key: str) -> str:
        """The object's URL or URI, as LiveKit reports it in ``location``."""
        return self._object_location(self.key(key))

    def upload(self, path: Path, key: str, *, attempts: int = 6, base_delay_s: float = 1.0,
               max_delay_s: float = 0.0, on_retry: Callable[[], None] | None = None) -> str:
        """Upload local file ``path`` as ``key``; returns :meth:`location`. The local file is left alone.

        Tries ``attempts`` times (at least once), waiting ``base_delay_s``, 2x, 4x... s between tries,
        each wait at most ``max_delay_s`` s when that is set; ``on_retry()`` is called before each retry.

        Raises:
            Exception: the last upload error, when every attempt failed.
        """
        path, full = Path(path), self.key(key)
        for attempt in range(1, max(attempts, 1) + 1):
            try:
                self._put(path, full)
                return self._object_location(full)
            except Exception as e:  # network, auth, server errors: all retried the same way
                if attempt >= attempts:
                    raise
                delay = base_delay_s * 2 ** (attempt - 1)
                delay = min(delay, max_delay_s) if max_delay_s > 0 else delay
                log.warning("upload of %s to %s failed (attempt %d, retry in %.1f s): %s",
                            path.name, self.describe(), attempt, delay, e)
                time.sleep(delay)
                if on_retry is not None:
                    on_retry()
        raise AssertionError("unreachable")

    def presign(self, key: str, expires_s: int) -> str | None:
        """A URL that downloads ``key`` without credentials for ``expires_s`` seconds, or None where the
        backend has no such URLs."""
        return None

    def delete(self, key: str) -> None:
        """Delete the object ``key``; deleting a missing object is not an error."""
        raise NotImplementedError


class ObjectStorage(Storage):
    """A destination served by an obstore store (S3, GCS, Azure): puts, signed URLs, deletes, writers.

    ``proxy``: an ``http(s)://[user:password@]host:port`` forward proxy every request goes through
    (LiveKit's ``ProxyConfig``; a secret when it holds a password); "" for none.
    """

    proxy: str = Field("", repr=False)

    def store(self):
        """The obstore store of this destination."""
        raise NotImplementedError

    def attributes(self, path: Path | str) -> dict[str, str]:
        """Object attributes (Content-Type, and what the backend allows beside it)."""
        return {"Content-Type": content_type(path)}

    def tags(self) -> dict[str, str] | None:
        return None

    def _put(self, path: Path, key: str) -> None:
        with open_existing(path) as f:
            obstore.put(self.store(), key, f, attributes=self.attributes(path), tags=self.tags())

    def presign(self, key: str, expires_s: int) -> str | None:
        """A signed GET URL (S3 SigV4, GCS V4 signature, Azure SAS) valid for ``expires_s`` s.

        Raises:
            Exception: obstore's error when the credentials cannot sign (no key).
        """
        return obstore.sign(self.store(), "GET", self.key(key), timedelta(seconds=expires_s))

    def delete(self, key: str) -> None:
        obstore.delete(self.store(), self.key(key))

    def open_writer(self, key: str, buffer_size: int = 10 * 1024 * 1024):
        """An obstore writer: ``buffer_size`` bytes are buffered, then sent as multipart parts."""
        return obstore.open_writer(self.store(), self.key(key), attributes=self.attributes(key),
                                   tags=self.tags(), buffer_size=buffer_size)


def client_options(endpoint: str, proxy: str = "") -> dict:
    """obstore client options: plain HTTP allowed only for an ``http://`` endpoint (emulators, MinIO);
    ``proxy`` (a URL, credentials in it) carries every request when set."""
    options = {"allow_http": endpoint.startswith("http://"), **CLIENT_TIMEOUTS}
    return options | ({"proxy_url": proxy} if proxy else {})


def proxy_url(url: str, username: str = "", password: str = "") -> str:
    """A proxy URL with ``username``/``password`` put in it (percent-encoded), as LiveKit's
    ``ProxyConfig{url, username, password}`` gives them apart; "" when ``url`` is "".

    Raises:
        ValueError: ``url`` is not an ``http://`` or ``https://`` URL with a host.
    """
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL")
    if not username:
        return url
    auth = quote(username, safe="") + (":" + quote(password, safe="") if password else "")
    return urlunsplit((parts.scheme, f"{auth}@{parts.netloc.rsplit('@', 1)[-1]}", parts.path, parts.query, ""))
