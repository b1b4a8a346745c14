"""Upload destinations of a request: an output's ``s3``/``gcp``/``azure``/``aliOSS`` oneof (or a
``livekit.StorageConfig``) as an :data:`~pyegress.storage.AnyStorage`."""

from __future__ import annotations

import json

from ...errors import invalid
from ...storage import AnyStorage, AzureStorage, GCSStorage, S3Storage
from ...storage.base import proxy_url
from ...storage.s3 import alioss_endpoint
from .web import split_url

_UPLOAD_FIELDS = ("s3", "gcp", "azure", "aliOSS")


def _endpoint(value: str, field_name: str) -> str:
    if value and split_url(value, field_name).scheme not in ("http", "https"):
        raise invalid(field_name, "must be an http:// or https:// URL")
    return value


def _proxy(up, field_name: str) -> str:
    """The proxy URL of an ``S3Upload``/``GCPUpload``'s ``proxy`` (``livekit.ProxyConfig``), "" if unset.

    Raises:
        EgressError: ``invalid_argument`` naming ``<field>.proxy.url``.
    """
    if not up.HasField("proxy"):
        return ""
    try:
        return proxy_url(up.proxy.url, up.proxy.username, up.proxy.password)
    except ValueError as e:
        raise invalid(f"{field_name}.proxy.url", str(e)) from None


def upload_target(msg, field_name: str, default: AnyStorage | None = None) -> AnyStorage | None:
    """The destination named by ``msg``'s upload fields (``s3``, ``gcp``, ``azure``, ``aliOSS``: an output's
    ``output`` oneof, or a ``livekit.StorageConfig``), else ``default`` (the config file's ``storage``).

    Raises:
        EgressError: ``invalid_argument`` naming the missing or bad field (``file_outputs[0].gcp.bucket``).
    """
    which = next((name for name in _UPLOAD_FIELDS if msg.HasField(name)), None)
    if which is None:
        return default
    up, f = getattr(msg, which), f"{field_name}.{which}"
    required = {"s3": ("bucket",), "aliOSS": ("bucket",), "gcp": ("bucket",),
                "azure": ("account_name", "container_name")}[which]
    for name in required:
        if not getattr(up, name):
            raise invalid(f"{f}.{name}", "is required")
    if which == "s3":
        return S3Storage(bucket=up.bucket, region=up.region, endpoint=_endpoint(up.endpoint, f"{f}.endpoint"),
                        access_key=up.access_key, secret=up.secret, session_token=up.session_token,
                        force_path_style=up.force_path_style, metadata=dict(up.metadata), tagging=up.tagging,
                        content_disposition=up.content_disposition, proxy=_proxy(up, f))
    if which == "aliOSS":  # OSS speaks the S3 API (virtual-hosted buckets) at its regional endpoint
        return S3Storage(bucket=up.bucket, region=up.region, access_key=up.access_key, secret=up.secret,
                        endpoint=_endpoint(alioss_endpoint(up.region, up.endpoint), f"{f}.endpoint"))
    if which == "gcp":
        endpoint = ""
        if up.credentials:
            try:
                key = json.loads(up.credentials)
            except ValueError:
                raise invalid(f"{f}.credentials", "must be the JSON of a service account key") from None
            if not isinstance(key, dict):
                raise invalid(f"{f}.credentials", "must be the JSON of a service account key")
            endpoint = _endpoint(str(key.get("gcs_base_url", "")), f"{f}.credentials.gcs_base_url")
        return GCSStorage(bucket=up.bucket, credentials_json=up.credentials, endpoint=endpoint, proxy=_proxy(up, f))
    return AzureStorage(account_name=up.account_name, account_key=up.account_key, container_name=up.container_name)
