"""Storage destinations for outputs: S3-compatible (AWS, MinIO, SeaweedFS, DigitalOcean, AliOSS), GCS,
Azure Blob and SFTP, behind one interface (:class:`~pyegress.storage.base.Storage`)."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter, ValidationError

from .azure import AzureStorage
from .base import proxy_url
from .gcs import GCSStorage
from .s3 import S3Storage, alioss_endpoint
from .sftp import SFTPStorage

AnyStorage = Annotated[Union[S3Storage, GCSStorage, AzureStorage, SFTPStorage], Field(discriminator="kind")]
"""Any destination; ``kind`` (``s3``, ``gcs``, ``azure``, ``sftp``) tells which."""

_ADAPTER = TypeAdapter(AnyStorage)

__all__ = ["AzureStorage", "GCSStorage", "S3Storage", "SFTPStorage", "AnyStorage", "from_config"]


def from_config(block: dict[str, Any] | None, name: str = "storage") -> AnyStorage | None:
    """The destination of a config file's ``storage:`` / ``backup:`` block, or None when it names none.

    The block has LiveKit egress's shape (livekit/egress ``pkg/config/storage.go``): ``prefix`` and one
    of ``s3{access_key, secret, session_token, region, endpoint, bucket, force_path_style, metadata,
    tagging, content_disposition, proxy_config}``, ``azure{account_name, account_key, container_name}``,
    ``gcp{credentials_json, bucket, proxy_config}`` (``proxy_config{url, username, password}``),
    ``alioss{access_key, secret, region, endpoint, bucket}``; pyegress
    adds ``endpoint`` to ``azure`` and ``gcp`` (emulators) and an ``sftp{host, port, username, password,
    private_key, passphrase, host_key, base_path}`` block.

    Raises:
        ValueError: a block is not a mapping, several providers are set, or a field is missing or
            invalid; the message names the key (``storage.s3.bucket``).
    """
    if not block:
        return None
    if not isinstance(block, dict):
        raise ValueError(f"{name}: must be a mapping")
    providers = [p for p in ("s3", "azure", "gcp", "alioss", "sftp") if block.get(p)]
    if len(providers) > 1:
        raise ValueError(f"{name}: set one of s3, azure, gcp, alioss, sftp; found {', '.join(providers)}")
    if not providers:
        return None
    provider = providers[0]
    fields = dict(block[provider])
    if provider == "alioss":
        fields = {"access_key": fields.get("access_key", ""), "secret": fields.get("secret", ""),
                  "bucket": fields.get("bucket", ""), "region": fields.get("region", ""),
                  "endpoint": alioss_endpoint(fields.get("region", ""), fields.get("endpoint", ""))}
    proxy = fields.pop("proxy_config", None)
    if proxy:
        if not isinstance(proxy, dict):
            raise ValueError(f"{name}.{provider}.proxy_config: must be a mapping of url, username, password")
        try:
            fields["proxy"] = proxy_url(str(proxy.get("url", "")), str(proxy.get("username") or ""),
                                        str(proxy.get("password") or ""))
        except ValueError as e:
            raise ValueError(f"{name}.{provider}.proxy_config.url: {e}") from None
    fields = {k: v for k, v in fields.items() if k not in ("max_retries", "max_retry_delay", "min_retry_delay",
                                                           "assume_role_arn", "assume_role_external_id")}
    kind = {"alioss": "s3", "gcp": "gcs"}.get(provider, provider)
    try:
        return _ADAPTER.validate_python({**fields, "kind": kind, "prefix": block.get("prefix") or ""})
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"][1:])  # [0] is the union's tag
        raise ValueError(f"{name}.{provider}.{where}: {err['msg']}") from None
