"""Headless Chromium for a web egress: the process, its profile and its DevTools connection.

Chromium (Debian's ``chromium``) runs headless with its own ``--user-data-dir``
and a window of the output size, and is driven over the DevTools protocol
(:mod:`.cdp`) on the port it announces in ``DevToolsActivePort``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
from pathlib import Path

from .cdp import CdpConnection, CdpError
from ..children import orphan_proof, terminate

log = logging.getLogger(__name__)

#: Flags for Chromium in this environment: headless without a GPU or sandbox (root in a container), no
#: connections of its own (the network is closed, and a recording must not phone home), and no throttling
#: of timers or rendering of a page nobody looks at.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--no-default-browser-check",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-breakpad",
    "--disable-default-apps", "--disable-extensions", "--disable-dev-shm-usage", "--hide-scrollbars",
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows", "--force-color-profile=srgb", "--password-store=basic",
    "--autoplay-policy=no-user-gesture-required",
)


def find_chromium() -> str:
    """The Chromium executable: ``PYEGRESS_CHROMIUM``, else ``chromium`` (Debian), ``chromium-browser`` or
    ``google-chrome`` on PATH.

    Raises:
        FileNotFoundError: none is installed (``scripts/setup`` installs Debian's ``chromium``).
    """
    for name in (os.environ.get("PYEGRESS_CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name) if name else None
        if path:
            return path
    raise FileNotFoundError("no Chromium found: install Debian's chromium (scripts/setup) or set PYEGRESS_CHROMIUM")



class Chromium:
    """One Chromium process with its profile in ``directory``; :attr:`cdp` is its browser connection
    once :meth:`start` returned, :attr:`process` the process."""

    def __init__(self, directory: Path, width: int, height: int, *, audio: bool) -> None:
        self.directory = directory
        self.width, self.height, self.audio = width, height, audio
        self.process: asyncio.subprocess.Process | None = None
        self.cdp: CdpConnection | None = None

    async def start(self, env: dict[str, str]) -> None:
        """Start Chromium on ``about:blank`` and connect to it.

        Raises:
            FileNotFoundError: no Chromium is installed.
            RuntimeError: it exited before listening (with the tail of its log).
        """
        args = [find_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={self.directory / 'profile'}",
                f"--window-size={self.width},{self.height}", "--remote-debugging-port=0"]
        if not self.audio:
            args.append("--mute-audio")
        log_path = self.directory / "chromium.log"
        with open(log_path, "wb") as log_file:
            self.process = await asyncio.create_subprocess_exec(
                *orphan_proof([*args, "about:blank"]), stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file, stderr=log_file, env=env, start_new_session=True)
        # Chromium writes the port it chose and the browser's websocket path here once it listens.
        port_file = self.directory / "profile" / "DevToolsActivePort"
        while True:
            if self.process.returncode is not None:
                tail = "\n".join(line for line in log_path.read_text(errors="replace").splitlines()
                                 if "dbus" not in line)[-800:]
                raise RuntimeError(f"chromium exited with code {self.process.returncode}: {tail}")
            lines = port_file.read_text().split() if port_file.exists() else []
            if len(lines) == 2:
                break
            await asyncio.sleep(0.02)
        self.cdp = await CdpConnection.connect(f"ws://127.0.0.1:{lines[0]}{lines[1]}")
        log.info("chromium %s started (pid %s)", args[0], self.process.pid)

    async def exited(self) -> str:
        """Wait until Chromium exits or its DevTools connection is lost; returns which, for the error."""
        await asyncio.wait({asyncio.ensure_future(self.process.wait()),
                            asyncio.ensure_future(self.cdp.closed.wait())}, return_when=asyncio.FIRST_COMPLETED)
        code = self.process.returncode
        return "chromium exited" + (f" (code {code})" if code is not None else " (DevTools connection lost)")

    async def close(self) -> None:
        """Close Chromium politely (``Browser.close``), then by signal, with any helper process left behind."""
        if self.cdp is not None:
            try:
                await asyncio.wait_for(self.cdp.send("Browser.close"), 2)
            except (CdpError, ConnectionError, asyncio.TimeoutError):
                pass
            await self.cdp.close()
        if self.process is not None:
            await terminate(self.process)  # after Browser.close it is usually gone already
            try:
                os.killpg(self.process.pid, signal.SIGKILL)  # its own session: any helper left behind
            except ProcessLookupError:
                pass
