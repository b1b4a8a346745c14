"""The page's sound: a private PulseAudio daemon per egress with one null sink, recorded by ``parec``.

Chromium plays into the sink (``PULSE_SERVER``/``PULSE_SINK``) and ``parec``
records the sink's monitor as int16 stereo at the output sample rate. (PyAV's
FFmpeg has no ``pulse`` input.) A private daemon keeps egresses apart without a
system sound server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from ..children import orphan_proof, terminate

log = logging.getLogger(__name__)

PULSE_SINK = "egress"
AUDIO_CHANNELS = 2
AUDIO_READ_MS = 20


class PulseServer:
    """A private PulseAudio daemon in ``directory`` with one null sink named :data:`PULSE_SINK`.

    Clients reach it through :attr:`env` (``PULSE_SERVER``, ``PULSE_SINK``).
    Anonymous access on a unix socket only; no D-Bus, no default modules.
    """

    def __init__(self, directory: Path, sample_rate: int) -> None:
        self.directory = directory
        self.sample_rate = sample_rate
        self.socket = directory / "native"
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def env(self) -> dict[str, str]:
        return {"PULSE_SERVER": f"unix:{self.socket}", "PULSE_SINK": PULSE_SINK}

    async def start(self, timeout_s: float = 10.0) -> None:
        """Start the daemon and wait for its socket.

        Raises:
            FileNotFoundError: ``pulseaudio`` is not installed.
            RuntimeError: it exited or did not listen within ``timeout_s``.
        """
        exe = shutil.which("pulseaudio")
        if exe is None:
            raise FileNotFoundError("pulseaudio is not installed (scripts/setup installs it)")
        d = str(self.directory)
        env = os.environ | {"HOME": d, "XDG_RUNTIME_DIR": d, "PULSE_RUNTIME_PATH": d, "PULSE_STATE_PATH": d}
        log_file = open(self.directory / "pulseaudio.log", "wb")
        self._proc = await asyncio.create_subprocess_exec(
            *orphan_proof([exe, "-n", "--daemonize=no", "--system=false", "--use-pid-file=no", "--exit-idle-time=-1",
                            "--disable-shm=true", "-L", f"module-native-protocol-unix socket={self.socket} auth-anonymous=1",
                            "-L", f"module-null-sink sink_name={PULSE_SINK} rate={self.sample_rate} channels=2"]),
            stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file, env=env)
        log_file.close()
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not self.socket.exists():
            if self._proc.returncode is not None or asyncio.get_running_loop().time() > deadline:
                tail = (self.directory / "pulseaudio.log").read_text(errors="replace")[-500:]
                raise RuntimeError(f"pulseaudio did not start: {tail}")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        await terminate(self._proc)


class Parec:
    """``parec`` recording ``pulse``'s sink monitor: ``on_audio(samples)`` gets ``(n, 2) int16`` blocks of
    :data:`AUDIO_READ_MS` ms at ``sample_rate`` Hz; ``on_lost(message)`` is called if it stops before
    :meth:`close`."""

    def __init__(self, pulse: PulseServer, sample_rate: int, on_audio: Callable[[np.ndarray], None],
                 on_lost: Callable[[str], None]) -> None:
        self.pulse, self.sample_rate = pulse, sample_rate
        self.on_audio, self.on_lost = on_audio, on_lost
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task | None = None
        self._closing = False

    async def start(self) -> None:
        """Raises:
            FileNotFoundError: ``parec`` is not installed.
        """
        exe = shutil.which("parec")
        if exe is None:
            raise FileNotFoundError("parec is not installed (Debian pulseaudio-utils; scripts/setup installs it)")
        self._proc = await asyncio.create_subprocess_exec(
            *orphan_proof([exe, f"--device={PULSE_SINK}.monitor", "--format=s16le", f"--rate={self.sample_rate}",
                           f"--channels={AUDIO_CHANNELS}", "--raw", f"--latency-msec={AUDIO_READ_MS}"]),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, env=os.environ | self.pulse.env)
        self._reader = asyncio.create_task(self._read(), name="parec-reader")

    async def _read(self) -> None:
        block = self.sample_rate * AUDIO_READ_MS // 1000 * AUDIO_CHANNELS * 2
        stream = self._proc.stdout
        try:
            while True:
                data = await stream.readexactly(block)
                self.on_audio(np.frombuffer(data, dtype=np.int16).reshape(-1, AUDIO_CHANNELS))
        except asyncio.IncompleteReadError:
            if not self._closing:
                self.on_lost("parec stopped recording the page's sound")

    async def close(self) -> None:
        self._closing = True
        if self._reader is not None:
            self._reader.cancel()
        await terminate(self._proc)
