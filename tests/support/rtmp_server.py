"""A real RTMP server for tests: Debian's nginx with libnginx-mod-rtmp on loopback.

Every stream published to ``rtmp://127.0.0.1:<port>/live/<key>`` is recorded by
nginx as ``<record_dir>/<key>-<unix time>.flv``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from pyegress.devtools.process import ServerProcess, free_port, tcp_open

MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")


class RtmpServer(ServerProcess):
    """nginx-rtmp in the foreground with its config, logs and recordings under ``workdir``.

    Raises:
        RuntimeError: nginx or its RTMP module is not installed, or nginx does not start.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.port = free_port()
        self.record_dir = self.workdir / "recorded"

    name = "nginx-rtmp"

    def url(self, key: str, app: str = "live") -> str:
        return f"rtmp://127.0.0.1:{self.port}/{app}/{key}"

    def recordings(self, key: str) -> list[Path]:
        """The FLV files nginx recorded for stream ``key``, oldest first."""
        return sorted(self.record_dir.glob(f"{key}-*.flv"))

    def start(self) -> "RtmpServer":
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(nginx).exists() or not MODULE.exists():
            raise RuntimeError("nginx with libnginx-mod-rtmp is needed (scripts/setup --test installs them)")
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        self.record_dir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "nginx.conf"
        # As root, nginx's workers would switch to "nobody", who cannot write into private temp dirs.
        user = "user root;" if os.geteuid() == 0 else ""
        conf.write_text(f"""
{user}
load_module {MODULE};
worker_processes 1;
pid {self.workdir}/nginx.pid;
error_log {self.workdir}/logs/error.log info;
events {{ worker_connections 64; }}
rtmp {{
  server {{
    listen 127.0.0.1:{self.port};
    application live {{
      live on;
      record all;
      record_path {self.record_dir};
      record_unique on;
    }}
  }}
}}
""")
        self._spawn([nginx, "-p", str(self.workdir), "-c", str(conf), "-g", "daemon off;"],
                    lambda: tcp_open("127.0.0.1", self.port), 10,
                    stdout=subprocess.DEVNULL, stderr=open(self.workdir / "logs/stderr.log", "ab"))
        return self
