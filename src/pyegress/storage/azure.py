"""Azure Blob Storage through obstore (LiveKit's ``AzureBlobUpload``)."""

from __future__ import annotations

from typing import Literal

from obstore.store import AzureStore
from pydantic import Field

from .base import RETRY_CONFIG, ObjectStorage, client_options


class AzureStorage(ObjectStorage):
    """A blob container. ``account_key`` (base64, as the portal shows it) signs requests and SAS URLs.
    ``endpoint``: the account's blob URL when it is not ``https://<account_name>.blob.core.windows.net``
    (Azurite: ``http://127.0.0.1:10000/devstoreaccount1``)."""

    kind: Literal["azure"] = "azure"
    account_name: str
    account_key: str = Field("", repr=False)  # a secret: kept out of logs
    container_name: str
    endpoint: str = ""

    def store(self) -> AzureStore:
        config = {"account_name": self.account_name, "account_key": self.account_key,
                  "endpoint": self.endpoint.rstrip("/")}
        return AzureStore(self.container_name, **{k: v for k, v in config.items() if v},
                          client_options=client_options(self.endpoint, self.proxy), retry_config=RETRY_CONFIG)

    def describe(self) -> str:
        return f"azure://{self.account_name}/{self.container_name}" + (f" at {self.endpoint}" if self.endpoint else "")

    def _object_location(self, key: str) -> str:
        base = self.endpoint.rstrip("/") or f"https://{self.account_name}.blob.core.windows.net"
        return f"{base}/{self.container_name}/{key}"
