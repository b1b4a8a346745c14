"""A real Azure Blob server for tests: Azurite (npm ``azurite``, installed by ``scripts/setup --test`` into
``tests/azurite``) on loopback, blob service only."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from pyegress.devtools.process import ServerProcess, free_port, tcp_open

# Azurite's well-known development account (learn.microsoft.com: "Use the Azurite emulator").
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_AZURITE = Path(__file__).resolve().parents[1] / "azurite" / "node_modules" / ".bin" / "azurite-blob"


class AzureServer(ServerProcess):
    """Azurite's blob service at :attr:`endpoint` (path style: ``endpoint/<container>/<blob>``); data under
    ``workdir``, kept across stop/start on the same port. Containers are created by :meth:`create_container`."""

    name = "azurite"

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.port = free_port()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT_NAME}"

    def start(self, timeout_s: float = 60.0) -> "AzureServer":
        binary = shutil.which("azurite-blob") or str(_AZURITE)
        if not Path(binary).exists():
            raise RuntimeError("azurite is missing: run scripts/setup --test (npm install in tests/azurite)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._spawn([binary, "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--location",
                     str(self.workdir / "data"), "--skipApiVersionCheck", "--loose", "--silent"],
                    lambda: tcp_open("127.0.0.1", self.port), timeout_s,
                    stdout=open(self.workdir / "azurite.log", "ab"), stderr=subprocess.STDOUT)
        return self

    def create_container(self, name: str) -> None:
        """Create container ``name`` if missing (obstore writes blobs but creates no containers; the test
        extra ``azure-storage-blob`` does it as any Azure user would)."""
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import BlobServiceClient

        client = BlobServiceClient(self.endpoint, credential={"account_name": ACCOUNT_NAME, "account_key": ACCOUNT_KEY})
        try:
            client.create_container(name)
        except ResourceExistsError:
            pass
