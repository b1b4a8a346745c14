"""Source of a web egress: a page rendered by headless Chromium, its pictures and its sound.

- Chromium (Debian's ``chromium``) runs headless with its own ``--user-data-dir``
  and a viewport of the output size, driven over the DevTools protocol
  (:mod:`.cdp`). Pictures come from ``Page.startScreencast``: JPEG frames,
  sent only when the page changed, each acknowledged to get the next.
  ``HeadlessExperimental.beginFrame`` would pace frames exactly, but Chromium's
  new headless mode does not have it (only ``chrome-headless-shell``: Chromium
  156 answers "wasn't found"). Only the newest JPEG is kept and decoded when a
  tick needs it, so frames the output rate skips are never decoded.
- Sound: a private PulseAudio daemon per egress with one null sink; Chromium
  plays into it (``PULSE_SERVER``/``PULSE_SINK``) and ``parec`` records the
  sink's monitor as int16 stereo at the output sample rate. (PyAV's FFmpeg has
  no ``pulse`` input.) A private daemon keeps egresses apart without a system
  sound server.
- Start and end: with ``await_start_signal`` recording starts when the page
  logs ``START_RECORDING`` to the console, and a page that logs
  ``END_RECORDING`` ends the egress — LiveKit's template convention (its
  ``egress`` web source listens to ``Runtime.consoleAPICalled`` the same way).

Child processes are started through ``setpriv --pdeathsig`` so that a killed
worker does not leave a browser or a sound server behind.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import av
import numpy as np
import psutil

from .cdp import CdpConnection, CdpError

log = logging.getLogger(__name__)

START_RECORDING = "START_RECORDING"
END_RECORDING = "END_RECORDING"
PAGE_LOAD_TIMEOUT_S = 30.0  # LiveKit's egress gives Chrome 30 s to start and load the page
PULSE_SINK = "egress"
AUDIO_CHANNELS = 2
AUDIO_READ_MS = 20
FIRST_PICTURE_WAIT_S = 1.0
SCREENCAST_JPEG_QUALITY = 85  # 0-100; at 85 a 720p page is ~10 kB a frame and JPEG artefacts stay invisible

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


def shown_url(url: str) -> str:
    """``url`` as logs and errors may show it: a ``token`` query parameter (a template's room token,
    a credential) masked."""
    parts = urlsplit(url)
    query = [(k, "****" if k == "token" else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*"))) if parts.query else url


def _orphan_proof(argv: list[str]) -> list[str]:
    """``argv`` run so that it gets SIGTERM when this process dies (util-linux ``setpriv``)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "SIGTERM", "--", *argv] if setpriv else argv


class PageVideo:
    """The page's newest picture, decoded on demand into yuv420p at the output size.

    :meth:`push` takes a screencast frame (base64 JPEG); :meth:`compose`
    returns ``(frame, changed)`` with an ``av.VideoFrame`` (yuv420p,
    ``width`` x ``height``) — the same contract as the room compositor, so the
    pipeline's tick loop repeats or skips pictures against the media clock.
    Before the first picture it is black.
    """

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self._decoder = av.CodecContext.create("mjpeg", "r")
        self._pending: str | None = None
        black = np.full((height * 3 // 2, width), 128, dtype=np.uint8)
        black[:height] = 16  # limited-range black
        self._frame = av.VideoFrame.from_ndarray(black, format="yuv420p")
        self.received = 0  # screencast frames pushed
        self.decoded = 0  # of which decoded (the rest were replaced by a newer one first)
        self.latency_sum_s = self.latency_max_s = 0.0  # captured by Chromium → received here

    def push(self, jpeg_b64: str, latency_s: float = 0.0) -> None:
        """Keep ``jpeg_b64`` as the newest picture; ``latency_s``: how long ago Chromium captured it."""
        self._pending = jpeg_b64
        self.received += 1
        self.latency_sum_s += latency_s
        self.latency_max_s = max(self.latency_max_s, latency_s)

    def stats(self) -> str:
        """Counts and latency of the screencast so far, for the log."""
        mean_ms = 1000 * self.latency_sum_s / self.received if self.received else 0.0
        return (f"{self.received} frames received, {self.decoded} decoded, latency from capture "
                f"mean {mean_ms:.0f} ms, max {1000 * self.latency_max_s:.0f} ms")

    def compose(self) -> tuple[av.VideoFrame, bool]:
        if self._pending is None:
            return self._frame, False
        data, self._pending = base64.b64decode(self._pending), None
        try:
            frames = self._decoder.decode(av.Packet(data))
        except av.FFmpegError as e:  # a damaged frame: keep showing the previous one
            log.warning("undecodable screencast frame: %s", e)
            return self._frame, False
        if not frames:
            return self._frame, False
        # JPEG is full-range yuvj420p; reformat converts range and scales if the page's size differs
        self._frame = frames[-1].reformat(self.width, self.height, format="yuv420p")
        self.decoded += 1
        return self._frame, True


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
            *_orphan_proof([exe, "-n", "--daemonize=no", "--system=false", "--use-pid-file=no", "--exit-idle-time=-1",
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
        await _terminate(self._proc)


_DIR_PREFIX = "pyegress-web-"  # + worker PID: profile, sound server socket and logs of one web egress


def _remove_stale_dirs() -> None:
    """Remove the temporary directories of web egress workers that died without cleaning up (SIGKILL)."""
    for path in Path(tempfile.gettempdir()).glob(f"{_DIR_PREFIX}*-*"):
        pid = path.name[len(_DIR_PREFIX):].split("-")[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


async def _terminate(proc: asyncio.subprocess.Process | None, grace_s: float = 3.0) -> None:
    if proc is None or proc.returncode is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), grace_s)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()


class WebSource:
    """Chromium showing ``url`` at ``width`` x ``height``, recorded from the moment :meth:`connect` returns.

    - :attr:`video` (a :class:`PageVideo`, or None without ``video``) holds
      the newest picture;
    - ``on_audio(samples)`` gets the page's sound as ``(n, 2) int16`` blocks of
      20 ms at ``sample_rate`` Hz (only with ``audio``);
    - :attr:`started_s` (after :meth:`wait_start`): when the recording's
      timeline begins, s since the epoch — the start signal's own time;
    - :attr:`closed` is set when recording should end by itself, with
      :attr:`closed_reason`; :attr:`failure` says why if Chromium died.

    Same surface as :class:`~pyegress.media.source.RoomSource` where the
    pipeline needs one (``connect``, ``close``, ``closed``, ``room_sid``,
    ``pause``, ``resume``).
    """

    def __init__(self, url: str, width: int, height: int, framerate: int, *, video: bool, audio: bool,
                 sample_rate: int, await_start_signal: bool,
                 on_audio: Callable[[np.ndarray], None] = lambda samples: None) -> None:
        self.url = url
        self.shown_url = shown_url(url)
        self.width, self.height, self.framerate = width, height, framerate
        self.audio, self.sample_rate = audio, sample_rate
        self.await_start_signal = await_start_signal
        self.on_audio = on_audio
        self.video = PageVideo(width, height) if video else None
        self.room_sid = ""
        self.closed = asyncio.Event()
        self.closed_reason = ""
        # a page has no room connection to lose (RoomSource's connection state, for the pipeline)
        self.connection_failed = self.reconnecting = False
        self.reconnects: list[int] = []
        self.failure = ""
        self.started = asyncio.Event()  # START_RECORDING seen (set when loaded without await_start_signal)
        self.started_s = 0.0  # wall time (s since the epoch) of that moment: where the recording's timeline begins
        self._painted = asyncio.Event()  # a picture painted at or after it has arrived
        _remove_stale_dirs()
        self._dir = Path(tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}{os.getpid()}-"))
        self._pulse: PulseServer | None = None
        self._chromium: asyncio.subprocess.Process | None = None
        self._parec: asyncio.subprocess.Process | None = None
        self._cdp: CdpConnection | None = None
        self._session = ""
        self._tasks: list[asyncio.Task] = []
        self._closing = False
        self._paused = False

    # ---- start ------------------------------------------------------------
    async def connect(self) -> None:
        """Start the sound server and Chromium, load the page and start capturing.

        Returns once the page has loaded (``load`` event); with
        ``await_start_signal`` call :meth:`wait_start` next.

        Raises:
            RuntimeError: Chromium or PulseAudio would not start, or the page
                failed to load (the browser's ``errorText``, e.g.
                ``net::ERR_CONNECTION_REFUSED``, or a template's ``div.error``).
            TimeoutError: the page did not load within 30 s.
        """
        try:
            await asyncio.wait_for(self._connect(), PAGE_LOAD_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise TimeoutError(f"{self.shown_url} did not load within {PAGE_LOAD_TIMEOUT_S:.0f} s") from None

    async def _connect(self) -> None:
        env = os.environ | {"HOME": str(self._dir)}
        if self.audio:
            (self._dir / "pulse").mkdir()
            self._pulse = PulseServer(self._dir / "pulse", self.sample_rate)
            await self._pulse.start()
            env |= self._pulse.env
        await self._start_chromium(env)
        cdp = self._cdp
        cdp.on("Runtime.consoleAPICalled", self._on_console)
        cdp.on("Runtime.exceptionThrown", lambda p, s: log.warning(
            "page exception: %s", p.get("exceptionDetails", {}).get("text", "")))
        cdp.on("Page.screencastFrame", self._on_screencast_frame)
        loaded = asyncio.Event()
        cdp.on("Page.loadEventFired", lambda p, s: loaded.set())
        targets = (await cdp.send("Target.getTargets"))["targetInfos"]
        page = next((t for t in targets if t["type"] == "page"), None)
        if page is None:
            raise RuntimeError("chromium opened no page")
        self._session = (await cdp.send("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True}))["sessionId"]
        await self._page("Runtime.enable")
        await self._page("Page.enable")
        # The viewport is exactly the output size whatever the window manager of headless mode decides.
        await self._page("Emulation.setDeviceMetricsOverride",
                         {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})
        nav = await self._page("Page.navigate", {"url": self.url})
        if nav.get("errorText"):
            raise RuntimeError(f"cannot load {self.shown_url}: {nav['errorText']}")
        await loaded.wait()
        # LiveKit's templates show a failure (bad token, unknown room) in div.error
        error = await self._page("Runtime.evaluate", {
            "expression": "document.querySelector('div.error') ? document.querySelector('div.error').innerText : ''",
            "returnByValue": True})
        if error.get("result", {}).get("value"):
            raise RuntimeError(f"page error: {error['result']['value']}")
        if self.video is not None:
            # Every compositor frame (up to 60 Hz): on 2 busy cores every 2nd gave 16 fps where every one gave
            # 22, and the tick loop drops what the output rate does not need without decoding it.
            await self._page("Page.startScreencast", {
                "format": "jpeg", "quality": SCREENCAST_JPEG_QUALITY, "maxWidth": self.width,
                "maxHeight": self.height, "everyNthFrame": 1})
        if self.audio:
            await self._start_parec()
        if not self.await_start_signal:
            self._start(time.time())
        self._tasks.append(asyncio.create_task(self._watch(), name="chromium-watch"))

    async def _start_chromium(self, env: dict[str, str]) -> None:
        args = [find_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={self._dir / 'profile'}",
                f"--window-size={self.width},{self.height}", "--remote-debugging-port=0"]
        if not self.audio:
            args.append("--mute-audio")
        log_path = self._dir / "chromium.log"
        with open(log_path, "wb") as log_file:
            self._chromium = await asyncio.create_subprocess_exec(
                *_orphan_proof([*args, "about:blank"]), stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file, stderr=log_file, env=env, start_new_session=True)
        # Chromium writes the port it chose and the browser's websocket path here once it listens.
        port_file = self._dir / "profile" / "DevToolsActivePort"
        while True:
            if self._chromium.returncode is not None:
                tail = "\n".join(line for line in log_path.read_text(errors="replace").splitlines()
                                 if "dbus" not in line)[-800:]
                raise RuntimeError(f"chromium exited with code {self._chromium.returncode}: {tail}")
            lines = port_file.read_text().split() if port_file.exists() else []
            if len(lines) == 2:
                break
            await asyncio.sleep(0.02)
        self._cdp = await CdpConnection.connect(f"ws://127.0.0.1:{lines[0]}{lines[1]}")
        log.info("chromium %s started (pid %s)", args[0], self._chromium.pid)

    async def _start_parec(self) -> None:
        exe = shutil.which("parec")
        if exe is None:
            raise FileNotFoundError("parec is not installed (Debian pulseaudio-utils; scripts/setup installs it)")
        self._parec = await asyncio.create_subprocess_exec(
            *_orphan_proof([exe, f"--device={PULSE_SINK}.monitor", "--format=s16le", f"--rate={self.sample_rate}",
                            f"--channels={AUDIO_CHANNELS}", "--raw", f"--latency-msec={AUDIO_READ_MS}"]),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, env=os.environ | self._pulse.env)
        self._tasks.append(asyncio.create_task(self._read_audio(), name="parec-reader"))

    async def _page(self, method: str, params: dict | None = None) -> dict:
        return await self._cdp.send(method, params, self._session)

    async def wait_start(self) -> None:
        """Wait until the page logs ``START_RECORDING`` (at once without ``await_start_signal``), then for
        the first picture painted since (at most :data:`FIRST_PICTURE_WAIT_S`): a screencast frame arrives
        some tens of ms after the page drew it, and the recording must not open on the page before the signal.

        Raises:
            RuntimeError: Chromium exited or the page logged ``END_RECORDING`` first.
        """
        started = asyncio.ensure_future(self.started.wait())
        closed = asyncio.ensure_future(self.closed.wait())
        await asyncio.wait({started, closed}, return_when=asyncio.FIRST_COMPLETED)
        started.cancel(), closed.cancel()
        if not self.started.is_set():
            raise RuntimeError(self.failure or f"the page ended ({self.closed_reason}) before {START_RECORDING}")
        if self.video is not None:
            try:
                await asyncio.wait_for(self._painted.wait(), FIRST_PICTURE_WAIT_S)
            except asyncio.TimeoutError:
                log.warning("no picture within %.1f s of the start; recording anyway", FIRST_PICTURE_WAIT_S)

    def _start(self, at_s: float) -> None:
        self.started_s = at_s
        self.started.set()

    # ---- while recording --------------------------------------------------
    def _on_console(self, params: dict, session_id: str) -> None:
        values = [a.get("value") for a in params.get("args", [])]
        if START_RECORDING in values and not self.started.is_set():
            log.info("page logged %s", START_RECORDING)
            self._start(params.get("timestamp", time.time() * 1000) / 1000)  # CDP: ms since the epoch
        if END_RECORDING in values:
            log.info("page logged %s", END_RECORDING)
            self._end(END_RECORDING)

    def pause(self) -> None:
        """Drop the page's pictures and sound until :meth:`resume` (the pipeline's clock stands still meanwhile)."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    def _on_screencast_frame(self, params: dict, session_id: str) -> None:
        self._cdp.send_nowait("Page.screencastFrameAck", {"sessionId": params["sessionId"]}, self._session)
        if self._paused:
            return
        # metadata.timestamp: the frame's swap time, s since the epoch (CDP Page.ScreencastFrameMetadata)
        captured_s = params.get("metadata", {}).get("timestamp", 0.0)
        self.video.push(params["data"], max(0.0, time.time() - captured_s) if captured_s else 0.0)
        if self.started.is_set() and captured_s >= self.started_s:
            self._painted.set()

    async def _read_audio(self) -> None:
        block = self.sample_rate * AUDIO_READ_MS // 1000 * AUDIO_CHANNELS * 2
        stream = self._parec.stdout
        try:
            while True:
                data = await stream.readexactly(block)
                if not self._paused:
                    self.on_audio(np.frombuffer(data, dtype=np.int16).reshape(-1, AUDIO_CHANNELS))
        except asyncio.IncompleteReadError:
            if not self._closing:
                self._fail("parec stopped recording the page's sound")

    async def _watch(self) -> None:
        """End the recording with a failure if Chromium dies while it runs."""
        await asyncio.wait({asyncio.ensure_future(self._chromium.wait()),
                            asyncio.ensure_future(self._cdp.closed.wait())}, return_when=asyncio.FIRST_COMPLETED)
        if not self._closing:
            code = self._chromium.returncode
            self._fail("chromium exited" + (f" (code {code})" if code is not None else " (DevTools connection lost)"))

    def _fail(self, message: str) -> None:
        log.error("%s", message)
        self.failure = self.failure or message
        self._end("chromium failed")

    def _end(self, reason: str) -> None:
        if not self.closed.is_set():
            self.closed_reason = reason
            self.closed.set()

    # ---- end --------------------------------------------------------------
    async def close(self) -> None:
        """Stop capturing, close Chromium (politely, then by signal) and the sound server; remove the profile."""
        self._closing = True
        for task in self._tasks:
            task.cancel()
        if self._cdp is not None:
            try:
                await asyncio.wait_for(self._cdp.send("Browser.close"), 2)
            except (CdpError, ConnectionError, asyncio.TimeoutError):
                pass
            await self._cdp.close()
        await _terminate(self._parec)
        if self._chromium is not None:
            await _terminate(self._chromium)  # after Browser.close it is usually gone already
            try:
                os.killpg(self._chromium.pid, signal.SIGKILL)  # its own session: any helper left behind
            except ProcessLookupError:
                pass
        if self._pulse is not None:
            await self._pulse.close()
        shutil.rmtree(self._dir, ignore_errors=True)
