"""Websocket output of track egress: the track's audio as raw PCM.

Binary messages of signed 16-bit little-endian mono samples at the egress's
sample rate (48 kHz by default), one message per 20 ms block, as LiveKit's
track egress sends audio to a ``websocket_url``. Sending happens on a thread of
its own, so a slow receiver never stalls the pipeline; if it falls more than
:data:`QUEUE_BLOCKS` behind, or the connection fails, the output ends with an
error.
"""

from __future__ import annotations

import logging
import queue
import threading

import numpy as np
from websockets.sync.client import connect

from ...contract.streams import redact_error, redact_url
from .base import Output

log = logging.getLogger(__name__)

QUEUE_BLOCKS = 250  # 5 s of 20 ms blocks


class WebsocketOutput(Output):
    """Streams PCM to ``url``; :attr:`error` is set if the connection fails."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.error = ""
        self.sent_blocks = 0
        self._queue: queue.Queue = queue.Queue(QUEUE_BLOCKS)
        self._thread = threading.Thread(target=self._run, name="websocket", daemon=True)
        self._thread.start()

    def write_audio(self, samples: np.ndarray, pts: int) -> None:
        if self.error:
            return
        try:
            self._queue.put_nowait(samples[:, 0].astype("<i2").tobytes())
        except queue.Full:
            self.error = "the websocket receiver does not keep up"

    def _run(self) -> None:
        try:
            with connect(self.url, open_timeout=10, max_size=None) as ws:
                while (block := self._queue.get()) is not None:
                    ws.send(block)
                    self.sent_blocks += 1
        except Exception as e:  # connection refused, closed by the peer, protocol errors
            error = redact_error(f"websocket: {e}", self.url)  # its path or query may carry a token
            log.warning("websocket %s failed: %s", redact_url(self.url), error)
            self.error = self.error or error

    def close(self) -> None:
        """Send what is queued, close the connection (waits up to 10 s)."""
        try:
            self._queue.put(None, timeout=10)
        except queue.Full:
            self.error = self.error or "websocket closing timed out"
        self._thread.join(10)
