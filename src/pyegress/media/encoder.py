"""The encoder thread: encodes and muxes off the event loop.

PyAV releases the GIL inside libavcodec, so encoding in a thread lets the event
loop keep receiving and compositing frames meanwhile.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Protocol

import av
import numpy as np

log = logging.getLogger(__name__)


class Output(Protocol):
    def write_video(self, frame: av.VideoFrame, pts: int) -> None: ...
    def write_audio(self, samples: np.ndarray, pts: int) -> None: ...
    def close(self) -> int: ...


class EncoderThread:
    """Feeds queued video frames and audio blocks to every output, in order.

    ``submit_*`` are called from the event loop; ``max_queue`` items of
    backlog are allowed before :attr:`backlogged` turns True.
    The first error is kept in :attr:`error` and stops the thread.
    """

    def __init__(self, outputs: list[Output], max_queue: int = 120) -> None:
        self.outputs = outputs
        self._queue: queue.Queue = queue.Queue()
        self._max = max_queue
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="encoder", daemon=True)
        self._thread.start()

    @property
    def backlogged(self) -> bool:
        return self._queue.qsize() >= self._max

    def submit_video(self, frame: av.VideoFrame, pts: int) -> None:
        self._queue.put(("v", frame, pts))

    def submit_audio(self, samples: np.ndarray, pts: int) -> None:
        self._queue.put(("a", samples, pts))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self.error is not None:
                continue
            kind, payload, pts = item
            try:
                for out in self.outputs:
                    if kind == "v":
                        out.write_video(payload, pts)
                    else:
                        out.write_audio(payload, pts)
            except BaseException as e:  # kept and re-raised by finish()
                log.exception("encoding failed")
                self.error = e

    def finish(self) -> list[int]:
        """Drain the queue, close every output and return their sizes in bytes.

        Raises:
            BaseException: the first encoding error, if any.
        """
        self._queue.put(None)
        self._thread.join()
        sizes = []
        for out in self.outputs:  # close even after an error: what was written stays playable
            try:
                sizes.append(out.close())
            except Exception as e:
                log.exception("closing an output failed")
                self.error = self.error or e
        if self.error is not None:
            raise self.error
        return sizes
