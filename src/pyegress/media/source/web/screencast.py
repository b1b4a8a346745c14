"""The page's pictures: Chromium's ``Page.startScreencast`` JPEGs, decoded only when a tick needs one.

``Page.startScreencast`` (Chrome DevTools protocol) sends a JPEG whenever the
page repaints, each acknowledged to get the next.
``HeadlessExperimental.beginFrame`` would pace frames exactly, but Chromium's
new headless mode does not have it (only ``chrome-headless-shell``: Chromium
156 answers "wasn't found"). Only the newest JPEG is kept and decoded when a
tick needs it, so frames the output rate skips are never decoded.
"""

from __future__ import annotations

import base64
import logging

import av
import numpy as np

log = logging.getLogger(__name__)

SCREENCAST_JPEG_QUALITY = 85  # 0-100; at 85 a 720p page is ~10 kB a frame and JPEG artefacts stay invisible


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

    def compose(self, at_ns: int | None = None) -> tuple[av.VideoFrame, bool]:
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

    def set_layout(self, name: str) -> None:
        # The page composites itself (a custom template got its layout in the URL); nothing to redraw here.
        log.info("layout %r: a web page lays itself out; ignored", name)
