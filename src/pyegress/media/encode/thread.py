"""The encoder thread: encodes once and muxes to every output, off the event loop.

PyAV releases the GIL inside libavcodec, so encoding in a thread lets the event
loop keep receiving and compositing frames meanwhile.
"""

from __future__ import annotations

import logging
import queue
import threading

import av
import numpy as np

from .encoder import MediaEncoder

log = logging.getLogger(__name__)


class EncoderThread:
    """Feeds queued video frames and audio blocks to the encoder, and its packets to every output, in order.

    ``submit_*`` are called from the event loop; :attr:`backlogged` turns True
    once ``max_video_queue`` video frames wait (the pipeline then skips frames,
    which bounds memory: a queued 720p frame is 1.4 MB; 60 frames ride out 2 s
    of CPU contention at 30 fps). The first error
    is kept in :attr:`error` and stops the encoding (outputs are still closed).
    ``outputs`` are :class:`~pyegress.media.outputs.base.Output` s (``write_packets``, ``write_frame``,
    ``write_audio``, ``close``); encoding knows its outputs by that surface, not by import, since the
    outputs build on the encoder.
    """

    def __init__(self, encoder: MediaEncoder, outputs: list, max_video_queue: int = 60) -> None:
        self.encoder = encoder
        self.outputs = outputs
        self._queue: queue.Queue = queue.Queue()
        self._max = max_video_queue
        self._video_submitted = 0  # written by the event loop only
        self._video_taken = 0  # written by the encoder thread only
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="encoder", daemon=True)
        self._thread.start()

    @property
    def backlogged(self) -> bool:
        return self._video_submitted - self._video_taken >= self._max

    def submit_video(self, frame: av.VideoFrame, pts: int) -> None:
        self._video_submitted += 1
        self._queue.put(("video", frame, pts))

    def submit_audio(self, samples: np.ndarray, pts: int) -> None:
        self._queue.put(("audio", samples, pts))

    def call(self, fn) -> None:
        """Run ``fn()`` on the encoder thread between two media items (e.g. to add or remove an output)."""
        self._queue.put(("call", fn, 0))

    def _fan_out(self, kind: str, packets: list[av.Packet]) -> None:
        if packets:
            for out in self.outputs:
                out.write_packets(kind, packets)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            kind, payload, pts = item
            if kind == "video":
                self._video_taken += 1
            if self.error is not None:
                continue
            try:
                if kind == "call":
                    payload()
                elif kind == "video":
                    for out in self.outputs:
                        out.write_frame(payload, pts)
                    if self.encoder.video_stream is not None:
                        self._fan_out(kind, self.encoder.encode_video(payload, pts))
                else:
                    for out in self.outputs:
                        out.write_audio(payload, pts)
                    if self.encoder.audio_stream is not None:
                        self._fan_out(kind, self.encoder.encode_audio(payload, pts))
            except Exception as e:  # kept and re-raised by finish()
                log.exception("encoding failed")
                self.error = e

    def finish(self) -> None:
        """Drain the queue, flush the encoders and close every output.

        Raises:
            Exception: the first encoding or closing error, if any.
        """
        self._queue.put(None)
        self._thread.join()
        if self.error is None:
            try:
                if self.encoder.video_stream is not None:
                    self._fan_out("video", self.encoder.encode_video(None))
                if self.encoder.audio_stream is not None:
                    self._fan_out("audio", self.encoder.encode_audio(None))
            except Exception as e:
                log.exception("flushing the encoder failed")
                self.error = e
        for out in self.outputs:  # close even after an error: what was written stays playable
            try:
                out.close()
            except Exception as e:
                log.exception("closing an output failed")
                self.error = self.error or e
        self.encoder.close()
        if self.error is not None:
            raise self.error
