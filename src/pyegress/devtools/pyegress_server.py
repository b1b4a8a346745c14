"""Run ``pyegress serve`` as a subprocess (for the demo, tests and benchmarks)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .livekit_server import free_port


class PyegressServer:
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
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout_s: float = 20.0) -> "PyegressServer":
        """Start and wait for ``/healthz``.

        Raises:
            RuntimeError: the server exits or does not answer in time.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "server.log", "ab")
        self._proc = subprocess.Popen([sys.executable, "-m", "pyegress", "serve"], env=self.env,
                                      cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"pyegress serve exited with code {self._proc.returncode}; "
                                   f"see {self.workdir / 'server.log'}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("pyegress serve did not become healthy")

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def __enter__(self) -> "PyegressServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
