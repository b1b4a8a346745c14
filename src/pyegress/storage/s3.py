"""Uploads to S3-compatible storage (AWS S3, MinIO, SeaweedFS, DigitalOcean Spaces, AliOSS's S3 API) with obstore.

Failed uploads are retried with exponential backoff; the local file is only
deleted once the object is confirmed, so nothing is lost if the destination
stays down (the caller keeps it and reports ``backup_storage_used``).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import obstore
from obstore.store import S3Store
from pydantic import BaseModel

log = logging.getLogger(__name__)


class S3Target(BaseModel):
    """Where to put an object: the fields of LiveKit's ``S3Upload`` that pyegress honours."""

    bucket: str
    region: str = ""
    endpoint: str = ""
    access_key: str = ""
    secret: str = ""
    session_token: str = ""
    force_path_style: bool = False
    metadata: dict[str, str] = {}
    tagging: str = ""
    content_disposition: str = ""

    def store(self) -> S3Store:
        options = {"region": self.region or "us-east-1", "endpoint": self.endpoint,
                   "access_key_id": self.access_key, "secret_access_key": self.secret,
                   "session_token": self.session_token}
        return S3Store(self.bucket, **{k: v for k, v in options.items() if v},  # unset: obstore's defaults
                       virtual_hosted_style_request=not self.force_path_style,
                       client_options={"allow_http": self.endpoint.startswith("http://")})

    def location(self, key: str) -> str:
        """The object's URL, as LiveKit reports it in ``location``."""
        if not self.endpoint:
            return f"https://{self.bucket}.s3.{self.region or 'us-east-1'}.amazonaws.com/{key}"
        parts = urlsplit(self.endpoint.rstrip("/"))
        if self.force_path_style:
            return f"{parts.scheme}://{parts.netloc}{parts.path}/{self.bucket}/{key}"
        return f"{parts.scheme}://{self.bucket}.{parts.netloc}{parts.path}/{key}"

    def presign(self, key: str, expires_s: int) -> str | None:
        """A SigV4 presigned GET URL of ``key``, valid for ``expires_s`` seconds.

        Raises:
            Exception: obstore's error when the credentials cannot sign.
        """
        return obstore.sign(self.store(), "GET", key, timedelta(seconds=expires_s))

    def delete(self, key: str) -> None:
        """Delete the object ``key``; a missing object is not an error (S3's DeleteObject semantics)."""
        obstore.delete(self.store(), key)


def content_type(path: Path) -> str:
    return {".mp4": "video/mp4", ".webm": "video/webm", ".ogg": "audio/ogg", ".mp3": "audio/mpeg", ".ts": "video/mp2t",
            ".m3u8": "application/x-mpegURL", ".jpeg": "image/jpeg", ".json": "application/json"}.get(
        path.suffix.lower(), "application/octet-stream")


def upload(target: S3Target, path: Path, key: str, *, attempts: int = 6, base_delay_s: float = 1.0) -> str:
    """Upload ``path`` as ``key`` (multipart for large files); returns the object's location.

    Tries ``attempts`` times, waiting ``base_delay_s``, 2x, 4x... between tries.

    Raises:
        Exception: the last upload error, when every attempt failed.
    """
    store = target.store()
    attributes = {"Content-Type": content_type(path), **target.metadata}  # other keys are user metadata
    if target.content_disposition:
        attributes["Content-Disposition"] = target.content_disposition
    tags = dict(parse_qsl(target.tagging)) if target.tagging else None
    for attempt in range(1, attempts):
        try:
            obstore.put(store, key, path, attributes=attributes, tags=tags)
            return target.location(key)
        except Exception as e:  # network, auth, server errors: all retried the same way
            delay = base_delay_s * 2 ** (attempt - 1)
            log.warning("upload of %s to s3://%s/%s failed (attempt %d, retry in %.1f s): %s",
                        path.name, target.bucket, key, attempt, delay, e)
            time.sleep(delay)
    obstore.put(store, key, path, attributes=attributes, tags=tags)
    return target.location(key)
