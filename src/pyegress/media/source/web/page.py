"""Source of a web egress: a page rendered by headless Chromium, its pictures and its sound.

The parts: Chromium and its DevTools connection (:mod:`.chromium`,
:mod:`.cdp`), the screencast pictures (:mod:`.screencast`), the sound through a
private PulseAudio sink (:mod:`.pulse`); see docs/architecture.md, "Web egress".

Start and end: with ``await_start_signal`` recording starts when the page logs
``START_RECORDING`` to the console, and a page that logs ``END_RECORDING`` ends
the egress — LiveKit's template convention (its ``egress`` web source listens to
``Runtime.consoleAPICalled`` the same way). The recording's timeline starts at
the start signal's own time (:attr:`WebSource.started_s`), even though
recording begins a little later, once a picture painted since has arrived: the
pipeline backdates its clock to it, so a page's START_RECORDING →
END_RECORDING span is the recording's duration.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from ..base import CODE_INTERNAL, MediaSink, SourceError, TrackRef
from ..health import ReceiveHealth
from .chromium import Chromium
from .children import private_dir
from .pulse import Parec, PulseServer
from .screencast import SCREENCAST_JPEG_QUALITY, PageVideo

log = logging.getLogger(__name__)

START_RECORDING = "START_RECORDING"
END_RECORDING = "END_RECORDING"
PAGE_LOAD_TIMEOUT_S = 30.0  # LiveKit's egress gives Chrome 30 s to start and load the page
FIRST_PICTURE_WAIT_S = 1.0
#: The page's sound as the pipeline's mixer sees it: one track
PAGE_AUDIO = TrackRef("page", "audio", 0, "", "")


def shown_url(url: str) -> str:
    """``url`` as logs and errors may show it: a ``token`` query parameter (a template's room token,
    a credential) masked."""
    parts = urlsplit(url)
    query = [(k, "****" if k == "token" else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*"))) if parts.query else url


class WebSource:
    """Chromium showing ``url`` at ``width`` x ``height``: a :class:`~..base.Source`.

    - :attr:`picture` (a :class:`~.screencast.PageVideo`, or None without ``video``) holds
      the newest picture: the page lays itself out, so layouts are ignored;
    - ``sink.on_audio`` gets the page's sound as one track (:data:`PAGE_AUDIO`), ``(n, 2) int16``
      blocks of 20 ms at ``sample_rate`` Hz (only with ``audio``);
    - :attr:`started_s` (once :meth:`start` returned): when the recording's
      timeline begins, s since the epoch — the start signal's own time;
    - :attr:`closed` is set when recording should end by itself, with
      :attr:`closed_reason`; :attr:`failure` says why if Chromium died;
    - a page never "leaves" (:meth:`present`): it ends by StopEgress, END_RECORDING or a limit.
    """

    presence = "the page"

    def __init__(self, url: str, width: int, height: int, framerate: int, *, video: bool, audio: bool,
                 sample_rate: int, await_start_signal: bool, sink: MediaSink) -> None:
        self.url = url
        self.shown_url = shown_url(url)
        self.width, self.height, self.framerate = width, height, framerate
        self.audio, self.sample_rate = audio, sample_rate
        self.await_start_signal = await_start_signal
        self.sink = sink
        self.picture = PageVideo(width, height) if video else None
        self.room_sid = ""
        self.closed = asyncio.Event()
        self.closed_reason = ""
        # a page has no room connection to lose (RoomSource's connection state, for the pipeline)
        self.connection_failed = self.reconnecting = False
        self.reconnects: list[int] = []
        self.health = ReceiveHealth()  # a page has no tracks to report on
        self.failure = ""
        self.started = asyncio.Event()  # START_RECORDING seen (set when loaded without await_start_signal)
        self.started_s = 0.0  # wall time (s since the epoch) of that moment: where the recording's timeline begins
        self._painted = asyncio.Event()  # a picture painted at or after it has arrived
        self._dir = private_dir()
        self._pulse: PulseServer | None = None
        self._chromium = Chromium(self._dir, width, height, audio=audio)
        self._parec: Parec | None = None
        self._session = ""
        self._tasks: list[asyncio.Task] = []
        self._closing = False
        self._paused = False

    # ---- start ------------------------------------------------------------
    async def start(self, stop: asyncio.Event) -> None:
        """Load the page (:meth:`connect`) and wait for its start signal (:meth:`wait_start`); a stop
        meanwhile returns with the page loaded, so the egress is aborted before it began.

        Raises:
            SourceError: Chromium, PulseAudio or the page failed (error_code 500); the source is closed.
        """
        try:
            await self.connect()
            started = asyncio.ensure_future(self.wait_start())
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({started, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not started.done():
                started.cancel()
                log.info("stopped before the page logged %s", START_RECORDING)
                return
            started.result()
            return
        except Exception as e:  # Chromium, PulseAudio or the page failed: the egress fails
            log.exception("web source failed")
            error = f"could not record {self.shown_url}: {e}"
        await self.close()
        raise SourceError(error, CODE_INTERNAL)

    def present(self) -> bool:
        return True  # a page never "leaves"; it ends by StopEgress, END_RECORDING or a limit

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
        await self._chromium.start(env)
        cdp = self._chromium.cdp
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
        if self.picture is not None:
            # Every compositor frame (up to 60 Hz): on 2 busy cores every 2nd gave 16 fps where every one gave
            # 22, and the tick loop drops what the output rate does not need without decoding it.
            await self._page("Page.startScreencast", {
                "format": "jpeg", "quality": SCREENCAST_JPEG_QUALITY, "maxWidth": self.width,
                "maxHeight": self.height, "everyNthFrame": 1})
        if self.audio:
            self.sink.on_track(PAGE_AUDIO)
            self._parec = Parec(self._pulse, self.sample_rate, self._on_audio, self._fail)
            await self._parec.start()
        if not self.await_start_signal:
            self._start(time.time())
        self._tasks.append(asyncio.create_task(self._watch(), name="chromium-watch"))

    async def _page(self, method: str, params: dict | None = None) -> dict:
        return await self._chromium.cdp.send(method, params, self._session)

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
        if self.picture is not None:
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
        self._chromium.cdp.send_nowait("Page.screencastFrameAck", {"sessionId": params["sessionId"]}, self._session)
        if self._paused:
            return
        # metadata.timestamp: the frame's swap time, s since the epoch (CDP Page.ScreencastFrameMetadata)
        captured_s = params.get("metadata", {}).get("timestamp", 0.0)
        self.picture.push(params["data"], max(0.0, time.time() - captured_s) if captured_s else 0.0)
        if self.started.is_set() and captured_s >= self.started_s:
            self._painted.set()

    def _on_audio(self, samples: np.ndarray) -> None:
        if not self._paused:
            self.sink.on_audio(PAGE_AUDIO, samples)

    async def _watch(self) -> None:
        """End the recording with a failure if Chromium dies while it runs."""
        message = await self._chromium.exited()
        if not self._closing:
            self._fail(message)

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
        if self._parec is not None:
            await self._parec.close()
        await self._chromium.close()
        if self._pulse is not None:
            await self._pulse.close()
        shutil.rmtree(self._dir, ignore_errors=True)
        if self.picture is not None and self.started.is_set():
            log.info("screencast: %s", self.picture.stats())
