"""Live preview: a JPEG of the newest output picture, written only while someone watches.

The service asks for it with a ``preview`` command (:meth:`PreviewOutput.request`); for the next
:data:`WATCH_S` seconds the output takes the picture the encoder is given at most once every
:data:`INTERVAL_S` and writes it as one JPEG file, replaced atomically (temp file + rename, never
through a symlink: :class:`~pyegress.storage.local.LocalDir`). The frame is the compositor's own
(or a web page's), handed over by reference: no decode, no copy. Scaling and JPEG encoding run on a
thread of their own, so neither the tick loop nor the encoder thread waits for them; with nobody
watching, the cost is one comparison per frame.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import av

from ...storage.local import LocalDir
from .base import Output
from .images import JpegEncoder

log = logging.getLogger(__name__)

#: How long (s) one ``preview`` command keeps previews coming.
WATCH_S = 10.0
#: Shortest time (s) between two preview images.
INTERVAL_S = 1.0
#: Widest preview (pixels); a wider picture is scaled down, keeping its aspect ratio.
MAX_WIDTH = 1280
#: JPEG quantiser of previews (2..31, fixed): a 720p composite of two cameras is about 36 kB.
PREVIEW_Q = 6


def preview_size(width: int, height: int, max_width: int = MAX_WIDTH) -> tuple[int, int]:
    """``width`` x ``height`` scaled down to at most ``max_width`` wide, aspect kept, both even (pixels)."""
    if width > max_width:
        width, height = max_width, round(height * max_width / width)
    return max(2, width // 2 * 2), max(2, height // 2 * 2)


class PreviewOutput(Output):
    """Writes the preview JPEG to ``path`` (absolute) while :meth:`request` was called in the last
    :data:`WATCH_S` seconds, at most once every :data:`INTERVAL_S`.

    A failure to write is logged and never reaches the recording: a preview is not an output of the egress.
    """

    def __init__(self, path: str | Path, watch_s: float = WATCH_S, interval_s: float = INTERVAL_S) -> None:
        self.path = Path(path)
        self.watch_s, self.interval_s = watch_s, interval_s
        self._until = 0.0  # monotonic s until which someone watches
        self._next = 0.0  # monotonic s before which no new image is taken
        self._pending: av.VideoFrame | None = None  # the frame the writer thread is to write next
        self._wake = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._jpeg: JpegEncoder | None = None
        self._dir: LocalDir | None = None
        self.written = 0  # images written so far

    def request(self) -> None:
        """Someone watches: take pictures for the next ``watch_s`` seconds (any thread)."""
        self._until = time.monotonic() + self.watch_s

    def write_frame(self, frame: av.VideoFrame, pts: int) -> None:
        now = time.monotonic()
        if now >= self._until or now < self._next:  # nobody watches, or one was taken just now
            return
        self._next = now + self.interval_s
        with self._wake:
            # a frame the writer has not taken yet is replaced: the newest picture is the one wanted
            self._pending = frame  # compositor frames are never written again once handed out
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="preview", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._pending is None and not self._closed:
                    self._wake.wait()
                if self._closed:
                    break
                frame, self._pending = self._pending, None
            try:
                self._write(frame)
            except Exception:  # the recording goes on without its preview
                log.exception("writing the preview %s failed", self.path)
        if self._dir is not None:  # the egress has ended: its preview with it
            try:
                os.unlink(self.path.name, dir_fd=self._dir.fd)
            except OSError:
                pass
            self._dir.close()

    def _write(self, frame: av.VideoFrame) -> None:
        size = preview_size(frame.width, frame.height)
        if self._jpeg is None or (self._jpeg.width, self._jpeg.height) != size:  # a web page may resize
            self._jpeg = JpegEncoder(*size, qmin=PREVIEW_Q, qmax=PREVIEW_Q)
        if self._dir is None:
            self._dir = LocalDir(self.path.parent)
        self._dir.replace(self.path.name, self._jpeg.encode(frame))
        self.written += 1

    def close(self) -> None:
        """Stop the writer thread (an image being written is finished first), which removes the preview file."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(5)
