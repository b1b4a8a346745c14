"""Google Cloud Storage through obstore (LiveKit's ``GCPUpload``)."""

from __future__ import annotations

from typing import Literal

from obstore.store import GCSStore
from pydantic import Field

from .base import RETRY_CONFIG, ObjectStorage, client_options

PUBLIC_ENDPOINT = "https://storage.googleapis.com"


class GCSStorage(ObjectStorage):
    """A GCS bucket. ``credentials_json``: the contents of a service-account key file (its private key
    signs requests and presigned URLs); empty uses the machine's default credentials.
    ``endpoint``: another base URL instead of ``https://storage.googleapis.com`` (an emulator such as
    fake-gcs-server; a key file's own ``gcs_base_url`` does the same)."""

    kind: Literal["gcs"] = "gcs"
    bucket: str
    credentials_json: str = Field("", repr=False)  # a secret: kept out of logs
    endpoint: str = ""

    def store(self) -> GCSStore:
        config = {"service_account_key": self.credentials_json, "base_url": self.endpoint.rstrip("/")}
        return GCSStore(self.bucket, **{k: v for k, v in config.items() if v},
                        client_options=client_options(self.endpoint, self.proxy), retry_config=RETRY_CONFIG)

    def describe(self) -> str:
        return f"gs://{self.bucket}" + (f" at {self.endpoint}" if self.endpoint else "")

    def _object_location(self, key: str) -> str:
        return f"{(self.endpoint or PUBLIC_ENDPOINT).rstrip('/')}/{self.bucket}/{key}"
