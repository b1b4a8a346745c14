"""A throwaway Debian ``redis-server`` on loopback (tests and benchmarks of the psrpc worker)."""

from __future__ import annotations

import shutil
import subprocess

import redis

from pyegress.devtools.process import ServerProcess, free_port


def _pings(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_timeout=0.5).ping())
    except redis.RedisError:
        return False


class RedisServer(ServerProcess):
    """``redis-server`` on 127.0.0.1 without persistence; ``address`` is ``host:port``."""

    name = "redis-server"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> "RedisServer":
        """Start and wait for PING.

        Raises:
            RuntimeError: ``redis-server`` is missing (``scripts/setup --test`` installs it) or not ready.
        """
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: run scripts/setup --test")
        self._spawn([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                    lambda: _pings(self.port), timeout_s, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self
