"""A real SRT receiver for tests: Debian's ffmpeg (libsrt) listening on loopback.

It takes one SRT connection on ``srt://127.0.0.1:<port>`` and records what it
receives, remuxed as is, to ``<workdir>/received.ts``; it exits once the sender
disconnects.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from pyegress.devtools.process import ServerProcess, free_port


def udp_bound(port: int) -> bool:
    """Whether some socket on this machine is bound to UDP ``port`` (IPv4), from ``/proc/net/udp``."""
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        local = line.split()[1]  # "0100007F:1F90"
        if int(local.rsplit(":", 1)[1], 16) == port:
            return True
    return False


class SrtReceiver(ServerProcess):
    """``ffmpeg -i srt://127.0.0.1:<port>?mode=listener -c copy received.ts`` under ``workdir``.

    Raises:
        RuntimeError: no ffmpeg on PATH, or it does not start listening.
    """

    name = "ffmpeg SRT listener"

    def __init__(self, workdir: Path, passphrase: str = "") -> None:
        self.workdir = Path(workdir)
        self.port = free_port()
        self.passphrase = passphrase
        self.path = self.workdir / "received.ts"

    @property
    def url(self) -> str:
        """The URL a sender (caller mode) connects to, with the passphrase if one is set."""
        query = f"?passphrase={self.passphrase}" if self.passphrase else ""
        return f"srt://127.0.0.1:{self.port}{query}"

    def start(self) -> "SrtReceiver":
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            raise RuntimeError("ffmpeg is needed (scripts/setup installs it)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        listen = f"srt://127.0.0.1:{self.port}?mode=listener"
        if self.passphrase:
            listen += f"&passphrase={self.passphrase}"
        self._spawn([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-i", listen, "-map", "0", "-c", "copy",
                     "-f", "mpegts", str(self.path)],
                    lambda: udp_bound(self.port), 10, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=open(self.workdir / "ffmpeg.log", "ab"))
        return self

    def wait_finished(self, timeout_s: float = 20.0) -> int:
        """Wait until the sender has disconnected and the file is complete; returns ffmpeg's exit status.

        Raises:
            subprocess.TimeoutExpired: still receiving after ``timeout_s``.
        """
        return self._proc.wait(timeout_s)
