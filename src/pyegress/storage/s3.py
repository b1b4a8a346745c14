"""S3-compatible storage (AWS S3, MinIO, SeaweedFS, DigitalOcean Spaces, AliOSS's S3 API) through obstore."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from obstore.store import S3Store
from pydantic import Field

from .base import RETRY_CONFIG, ObjectStorage, client_options


class S3Storage(ObjectStorage):
    """Where to put objects: the fields of LiveKit's ``S3Upload`` that pyegress honours.

    ``endpoint``: an ``http(s)://`` URL for non-AWS servers; ``force_path_style`` keeps the bucket in
    the path (``endpoint/bucket/key``) instead of the host name; ``metadata`` becomes user metadata,
    ``tagging`` (``k=v&k2=v2``) object tags, ``content_disposition`` the Content-Disposition header.
    """

    kind: Literal["s3"] = "s3"
    bucket: str
    region: str = ""
    endpoint: str = ""
    access_key: str = ""
    secret: str = Field("", repr=False)  # a secret: kept out of logs
    session_token: str = Field("", repr=False)  # a secret: kept out of logs
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
                       client_options=client_options(self.endpoint, self.proxy), retry_config=RETRY_CONFIG)

    def attributes(self, path: Path | str) -> dict[str, str]:
        attributes = {**super().attributes(path), **self.metadata}  # keys other than headers are user metadata
        if self.content_disposition:
            attributes["Content-Disposition"] = self.content_disposition
        return attributes

    def tags(self) -> dict[str, str] | None:
        return dict(parse_qsl(self.tagging)) if self.tagging else None

    def describe(self) -> str:
        return f"s3://{self.bucket}" + (f" at {self.endpoint}" if self.endpoint else "")

    def _object_location(self, key: str) -> str:
        if not self.endpoint:
            return f"https://{self.bucket}.s3.{self.region or 'us-east-1'}.amazonaws.com/{key}"
        parts = urlsplit(self.endpoint.rstrip("/"))
        if self.force_path_style:
            return f"{parts.scheme}://{parts.netloc}{parts.path}/{self.bucket}/{key}"
        return f"{parts.scheme}://{self.bucket}.{parts.netloc}{parts.path}/{key}"


def alioss_endpoint(region: str, endpoint: str = "") -> str:
    """The URL pyegress reaches AliOSS at: ``endpoint`` (AliOSS's own configs give it without a scheme,
    ``oss-cn-hangzhou.aliyuncs.com``: https is assumed), else the public endpoint of ``region``
    (``oss-cn-hangzhou`` or ``cn-hangzhou``; default ``cn-hangzhou``). OSS speaks the S3 API there,
    with virtual-hosted buckets."""
    if endpoint:
        return endpoint if "://" in endpoint else f"https://{endpoint}"
    region = region or "cn-hangzhou"
    region = region if region.startswith("oss-") else f"oss-{region}"
    return f"https://{region}.aliyuncs.com"
