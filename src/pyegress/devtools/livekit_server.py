"""Build and run a real livekit-server in dev mode on loopback.

The binary is built from its Go module (``go install``) and cached under
``~/.cache/pyegress/livekit-server-<version>/`` so a machine builds it once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .process import ServerProcess, free_port, http_ok

LIVEKIT_SERVER_VERSION = "v1.13.5"
DEV_API_KEY = "devkey"
DEV_API_SECRET = "secret"


def cache_dir() -> Path:
    """The directory holding the cached livekit-server binary (``$PYEGRESS_CACHE`` or ``~/.cache/pyegress``)."""
    root = Path(os.environ.get("PYEGRESS_CACHE", Path.home() / ".cache" / "pyegress"))
    return root / f"livekit-server-{LIVEKIT_SERVER_VERSION}"


def binary_path() -> Path:
    return cache_dir() / "livekit-server"


def ensure_built() -> Path:
    """Return the livekit-server binary, building it with ``go install`` if it is not cached.

    Raises:
        RuntimeError: ``go`` is missing or the build fails.
    """
    binary = binary_path()
    if binary.exists():
        return binary
    go = shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(go).exists():
        raise RuntimeError("livekit-server is not cached and Go is not installed (need Go >= 1.25)")
    with tempfile.TemporaryDirectory() as gobin:
        env = dict(os.environ, GOBIN=gobin)
        subprocess.run(
            [go, "install", f"github.com/livekit/livekit-server/cmd/server@{LIVEKIT_SERVER_VERSION}"],
            env=env,
            check=True,
        )
        binary.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(Path(gobin) / "server"), binary)
    return binary


class LiveKitServer(ServerProcess):
    """A livekit-server process in ``--dev`` mode bound to 127.0.0.1 (keys devkey/secret).

    Use as a context manager; ``url`` is the ``ws://`` URL clients connect to and
    ``http_url`` the one for the server APIs. With ``redis_host`` (``host:port``) it hands
    egress jobs to workers over psrpc; ``webhook_urls`` receive its webhooks (egress ones included).

    ``rtc`` adds keys to the config's ``rtc:`` section (livekit-server's config.yaml; values are
    written as JSON, which YAML reads) over this class's own: ``{"tcp_port": 0}`` turns ICE over
    TCP off, say. A ``node_ip`` there is the IP its ICE candidates advertise, instead of 127.0.0.1.
    """

    def __init__(self, port: int | None = None, log_path: Path | None = None,
                 redis_host: str | None = None, webhook_urls: list[str] | None = None,
                 rtc: dict[str, object] | None = None) -> None:
        self._fixed_port = port is not None
        self.port = port or free_port()
        self.rtc_tcp_port = free_port()
        self.rtc_udp_port = free_port()
        self.log_path = log_path
        self.redis_host = redis_host
        self.webhook_urls = webhook_urls or []
        self.rtc = dict(rtc or {})
        self.api_key = DEV_API_KEY
        self.api_secret = DEV_API_SECRET

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    name = "livekit-server"

    def start(self, timeout_s: float = 30.0, attempts: int = 3) -> "LiveKitServer":
        """Start the server and wait until it answers HTTP.

        A start that fails is retried on fresh ports: a port found free can be
        taken by another process before the server binds it.

        Raises:
            RuntimeError: the process exits or does not answer within ``timeout_s``, ``attempts`` times.
        """
        for _ in range(attempts - 1):
            try:
                return self._start_once(timeout_s)
            except RuntimeError:
                self.port = self.port if self._fixed_port else free_port()
                self.rtc_tcp_port, self.rtc_udp_port = free_port(), free_port()
        return self._start_once(timeout_s)

    def _start_once(self, timeout_s: float) -> "LiveKitServer":
        binary = ensure_built()
        rtc = {"tcp_port": self.rtc_tcp_port, "udp_port": self.rtc_udp_port, "use_external_ip": False} | self.rtc
        config = f"port: {self.port}\nrtc:\n" + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in rtc.items())
        if self.webhook_urls:
            config += f"webhook:\n  api_key: {self.api_key}\n  urls:\n" + "".join(f"    - {u}\n" for u in self.webhook_urls)
        args = [str(binary), "--dev", "--bind", "127.0.0.1", "--config-body", config]
        if "node_ip" not in self.rtc:  # the flag would override the config's
            args += ["--node-ip", "127.0.0.1"]
        if self.redis_host:
            args += ["--redis-host", self.redis_host]
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self._spawn(args, lambda: http_ok(self.http_url), timeout_s, stdout=out, stderr=subprocess.STDOUT)
        return self
