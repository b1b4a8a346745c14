"""A real HTTP forward proxy for tests: Debian's tinyproxy on loopback, with basic auth.

Every request it forwards is in its log (``requests()``), so a test can tell that
uploads went through it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from pyegress.devtools.process import ServerProcess, free_port, tcp_open


class HttpProxy(ServerProcess):
    """tinyproxy in the foreground, config and log under ``workdir``, accepting ``username``/``password``.

    Raises:
        RuntimeError: tinyproxy is not installed (``scripts/setup --test`` installs it) or does not start.
    """

    name = "tinyproxy"

    def __init__(self, workdir: Path, username: str = "proxy-user", password: str = "proxy-pass") -> None:
        self.workdir = Path(workdir)
        self.port = free_port()
        self.username, self.password = username, password
        self.log = self.workdir / "tinyproxy.log"

    @property
    def url(self) -> str:
        """The proxy's URL, without credentials."""
        return f"http://127.0.0.1:{self.port}"

    def requests(self) -> list[str]:
        """The request lines it forwarded (``PUT http://host/key HTTP/1.1``), oldest first."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return re.findall(r"Request \(file descriptor \d+\): (.+)$", text, re.MULTILINE)

    def start(self) -> "HttpProxy":
        binary = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
        if not Path(binary).exists():
            raise RuntimeError("tinyproxy is needed (scripts/setup --test installs it)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "tinyproxy.conf"
        # As root, tinyproxy would drop to "nobody", who cannot write the log in a private temp dir.
        user = "User root\nGroup root\n" if os.geteuid() == 0 else ""
        conf.write_text(f"""{user}Port {self.port}
Listen 127.0.0.1
Timeout 60
LogFile "{self.log}"
LogLevel Info
MaxClients 20
Allow 127.0.0.1
BasicAuth {self.username} {self.password}
DisableViaHeader Yes
""")
        self._spawn([binary, "-d", "-c", str(conf)], lambda: tcp_open("127.0.0.1", self.port), 10,
                    stdout=subprocess.DEVNULL, stderr=open(self.workdir / "stderr.log", "ab"))
        return self
