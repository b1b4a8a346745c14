"""Where a RealtimeKit recording's files go: its ``storage_config`` as a pyegress storage destination,
and the directory of its files (docs/realtimekit.md, "Storage").

Without ``storage_config`` (or with ``REALTIMEKIT_BUCKET``) the files go to pyegress's default storage,
under ``<meeting_id>/``; the credentials go to the recording process only (docs/security.md).
"""

from __future__ import annotations

from ...errors import invalid
from ...storage import AnyStorage, AzureStorage, GCSStorage, S3Storage, SFTPStorage
from .models import StorageConfig


def storage_target(config: StorageConfig, field: str = "storage_config") -> AnyStorage:
    """Where a RealtimeKit ``storage_config`` sends the files (object keys are the output paths).

    ``aws`` → S3 in ``region``; ``digitalocean`` → Spaces' S3 API at ``https://{region}.digitaloceanspaces.com``
    (DigitalOcean's documented endpoint); ``gcs`` → the bucket with ``secret`` as the service account's JSON
    key (RealtimeKit: no access key for gcs); ``azure`` → container ``bucket`` of account ``access_key``
    with ``secret`` as its key; ``sftp`` → ``host``:``port`` (22) as ``username``, with ``password``
    (``auth_method`` PASSWORD) or ``private_key`` (KEY; ``password`` then unlocks the key).

    Raises:
        EgressError: ``invalid_argument`` naming ``{field}.<name>`` for a missing field.
    """
    required = {"aws": ("bucket", "region", "access_key", "secret"), "digitalocean": ("bucket", "region",
                "access_key", "secret"), "gcs": ("bucket", "secret"), "azure": ("bucket", "access_key", "secret"),
                "sftp": ("host", "username", "private_key" if config.auth_method == "KEY" else "password")}
    for name in required[config.type]:
        if not getattr(config, name):
            raise invalid(f"{field}.{name}", f"is required for type {config.type!r}")
    if config.type in ("aws", "digitalocean"):
        endpoint = f"https://{config.region}.digitaloceanspaces.com" if config.type == "digitalocean" else ""
        return S3Storage(access_key=config.access_key, secret=config.secret, region=config.region,
                        bucket=config.bucket, endpoint=endpoint)
    if config.type == "gcs":
        return GCSStorage(bucket=config.bucket, credentials_json=config.secret)
    if config.type == "azure":
        return AzureStorage(account_name=config.access_key, account_key=config.secret, container_name=config.bucket)
    key = config.auth_method == "KEY"
    return SFTPStorage(host=config.host, port=config.port or 22, username=config.username,
                      password="" if key else config.password, private_key=config.private_key if key else "",
                      passphrase=config.password if key else "")


def object_dir(config: StorageConfig | None, meeting_id: str) -> str:
    """Directory of a recording's files: ``storage_config.path`` in a bucket, else the meeting's name."""
    if config is not None:
        return (config.path or "").strip("/")
    return meeting_id


def join(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory else name

