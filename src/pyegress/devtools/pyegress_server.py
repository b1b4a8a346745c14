"""Run ``pyegress serve`` as a subprocess (for the demo, tests and benchmarks)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .livekit_server import free_port
from .process import ServerProcess, http_ok


class PyegressServer(ServerProcess):
    """A ``pyegress serve`` process on 127.0.0.1 with its state under ``workdir``.

    ``url`` is the base URL for API clients. Use as a context manager.
    """

    def __init__(self, workdir: Path, ws_url: str, api_key: str, api_secret: str,
                 port: int | None = None, extra_env: dict[str, str] | None = None) -> None:
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.recordings_dir = self.workdir / "recordings"
        self.env = dict(os.environ, PYEGRESS_WS_URL=ws_url, PYEGRESS_API_KEY=api_key,
                        PYEGRESS_API_SECRET=api_secret, PYEGRESS_PORT=str(self.port),
                        PYEGRESS_RECORDINGS_DIR=str(self.recordings_dir),
                        PYEGRESS_DATABASE_URL=f"sqlite:///{self.workdir / 'pyegress.db'}",
                        PYEGRESS_LOG_DIR=str(self.workdir / "logs"), **(extra_env or {}))

    name = "pyegress serve"
    stop_timeout_s = 30.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20.0) -> "PyegressServer":
        """Start and wait for ``/healthz``.

        Raises:
            RuntimeError: the server exits or does not answer in time (see ``server.log``).
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "server.log", "ab")
        self._spawn([sys.executable, "-m", "pyegress", "serve"], lambda: http_ok(self.url + "/healthz"), timeout_s,
                    env=self.env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        return self
