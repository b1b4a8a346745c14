"""Run ``pyegress serve`` or ``pyegress worker`` as a subprocess (for the demo, tests and benchmarks)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .process import ServerProcess, free_port, http_ok


class PyegressServer(ServerProcess):
    """A ``pyegress serve`` process on 127.0.0.1 with its state under ``workdir``.

    ``url`` is the base URL for API clients. Use as a context manager.
    """

    def __init__(self, workdir: Path, ws_url: str, api_key: str, api_secret: str,
                 port: int | None = None, extra_env: dict[str, str] | None = None) -> None:
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.recordings_dir = self.workdir / "recordings"
        # extra_env overrides the defaults (a Postgres PYEGRESS_DATABASE_URL, say)
        self.env = dict(os.environ, PYEGRESS_WS_URL=ws_url, PYEGRESS_API_KEY=api_key,
                        PYEGRESS_API_SECRET=api_secret, PYEGRESS_PORT=str(self.port),
                        PYEGRESS_RECORDINGS_DIR=str(self.recordings_dir),
                        PYEGRESS_DATABASE_URL=f"sqlite:///{self.workdir / 'pyegress.db'}",
                        PYEGRESS_LOG_DIR=str(self.workdir / "logs")) | (extra_env or {})

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


class PyegressWorker(ServerProcess):
    """A ``pyegress worker`` process: an egress worker of the livekit-server that shares ``redis_address``.

    ``config`` is LiveKit egress config.yaml text merged over the generated
    one (e.g. a ``cpu_cost:`` block). State and ``worker.log`` go under ``workdir``.
    """

    name = "pyegress worker"
    stop_timeout_s = 60.0

    def __init__(self, workdir: Path, ws_url: str, api_key: str, api_secret: str, redis_address: str,
                 config: str = "", extra_env: dict[str, str] | None = None) -> None:
        self.workdir = Path(workdir)
        self.recordings_dir = self.workdir / "recordings"
        body = (f"api_key: {api_key}\napi_secret: {api_secret}\nws_url: {ws_url}\n"
                f"redis:\n  address: {redis_address}\n{config}")
        self.env = dict(os.environ, EGRESS_CONFIG_BODY=body, PYEGRESS_RECORDINGS_DIR=str(self.recordings_dir),
                        PYEGRESS_DATABASE_URL=f"sqlite:///{self.workdir / 'pyegress.db'}",
                        PYEGRESS_LOG_DIR=str(self.workdir / "logs"), **(extra_env or {}))
        for key in ("PYEGRESS_API_KEY", "PYEGRESS_API_SECRET", "PYEGRESS_WS_URL", "PYEGRESS_CONFIG"):
            self.env.pop(key, None)  # the config body is the whole truth

    @property
    def log_path(self) -> Path:
        return self.workdir / "worker.log"

    def start(self, timeout_s: float = 20.0) -> "PyegressWorker":
        """Start and wait for its ``ready`` line.

        Raises:
            RuntimeError: the worker exits or is not ready in time (see ``worker.log``).
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")

        def ready() -> bool:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return b" ready" in f.read()

        self._spawn([sys.executable, "-m", "pyegress", "worker"], ready, timeout_s,
                    env=self.env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        return self

    def kill(self) -> None:
        """SIGKILL the worker service (its recording processes live on by themselves)."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None
