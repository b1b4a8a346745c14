"""What the servers of the demo, tests and benchmarks share: a free port, and a child process that is ready
when a probe says so."""

from __future__ import annotations

import random
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable

import httpx


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now, below the ephemeral range: a port handed out
    before its server starts must not be taken meanwhile by some process's outgoing connection."""
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(10_000, low) if low > 10_100 else 0
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    with socket.socket() as s:  # everything tried was busy: let the kernel choose
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_ok(url: str) -> bool:
    """Whether ``url`` answers HTTP 200."""
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def tcp_open(host: str, port: int) -> bool:
    """Whether a TCP connection to ``host:port`` succeeds."""
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False


class ServerProcess:
    """Base of the devtools servers: subclasses implement ``start()``, which calls :meth:`_spawn`.

    Usable as a context manager (``start`` on enter, :meth:`stop` on exit).
    """

    name = "server"
    stop_timeout_s = 10.0
    _proc: subprocess.Popen | None = None

    def _spawn(self, args: list[str], ready: Callable[[], bool], timeout_s: float, **popen) -> None:
        """Start ``args`` and poll ``ready()`` every 0.1 s until it is True.

        Raises:
            RuntimeError: the process exits first, or ``timeout_s`` passes (the process is then stopped).
        """
        # A session of its own: signals a server sends to its process group (SeaweedFS does, on
        # shutdown) must not reach the test run or the other servers.
        self._proc = subprocess.Popen(args, start_new_session=True, **popen)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self._proc.returncode}")
            if ready():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} was not ready in {timeout_s} s")

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_timeout_s``."""
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def start(self):
        raise NotImplementedError

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
