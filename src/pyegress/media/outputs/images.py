"""Image output: a JPEG thumbnail of the output picture every ``interval_s`` seconds."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

from ...storage.local import LocalDir
from ...contract.events import ImagesResult
from ...contract.job import ImagesTarget
from .base import Output, utc_stamp


class JpegEncoder:
    """Encodes ``av.VideoFrame`` s as JPEG at ``width`` x ``height`` pixels with libavcodec's mjpeg
    (no Pillow round trip). ``qmin``/``qmax`` bound the quantiser (2..31, lower is better and larger);
    ``time_base`` (s) is that of the pts given to :meth:`encode`. One thread at a time uses it."""

    def __init__(self, width: int, height: int, *, qmin: int = 2, qmax: int = 5,
                 time_base: Fraction = Fraction(1, 1)) -> None:
        self.width, self.height = width, height
        self._ctx = av.CodecContext.create("mjpeg", "w")
        self._ctx.width, self._ctx.height, self._ctx.pix_fmt = width, height, "yuvj420p"
        self._ctx.time_base = time_base
        self._ctx.options = {"qmin": str(qmin), "qmax": str(qmax)}
        self._ctx.open()
        self._next_pts = 0

    def encode(self, frame: av.VideoFrame, pts: int | None = None) -> bytes:
        """``frame`` (any size and pixel format) scaled to this encoder's size, as JPEG bytes; ``pts`` in
        ``time_base`` units, increasing (None: the one after the last)."""
        image = frame.reformat(width=self.width, height=self.height, format="yuvj420p")
        # the encoder refuses a missing or repeated timestamp, and the frame may carry another time base
        image.pts = self._next_pts if pts is None else pts
        image.time_base = self._ctx.time_base
        self._next_pts = image.pts + 1
        return b"".join(bytes(p) for p in self._ctx.encode(image))


class ImagesOutput(Output):
    """Writes ``<prefix>_<index 00000>.jpeg`` (or a UTC timestamp, or always ``<prefix>.jpeg``).

    ``framerate`` is the output's (fps); the first image is the first frame. With ``target.upload``,
    each image is queued on ``uploads`` (an :class:`~pyegress.storage.uploads.UploadQueue`) once written.
    Each image is written whole to a temp file and renamed into place, never through a symlink.

    Raises:
        OSError: ``target.directory`` cannot be created or opened without following a
            symlink (see :class:`~pyegress.storage.local.LocalDir`).
    """

    def __init__(self, target: ImagesTarget, width: int, height: int, framerate: int, wall_start_ns: int,
                 uploads=None) -> None:
        self.target = target
        self.uploads = uploads if target.upload is not None else None
        self.dir = Path(target.directory)
        self._local = LocalDir(self.dir)
        self.width, self.height = target.width or width, target.height or height
        self.framerate = framerate
        self.wall_start_ns = wall_start_ns
        self._interval = max(1, round(target.interval_s * framerate))
        self._next_pts = 0
        self.count = 0
        self.size = 0  # bytes of every image written (session_limits.file_output_max_size)
        self._jpeg = JpegEncoder(self.width, self.height, time_base=Fraction(1, framerate))

    def _name(self, pts: int) -> str:
        if self.target.suffix == "none":
            return f"{self.target.prefix}.jpeg"
        if self.target.suffix == "timestamp":
            return f"{self.target.prefix}_{utc_stamp(self.wall_start_ns + pts * 1e9 / self.framerate)}.jpeg"
        return f"{self.target.prefix}_{self.count:05d}.jpeg"

    def write_frame(self, frame: av.VideoFrame, pts: int) -> None:
        if pts < self._next_pts:
            return
        self._next_pts = pts + self._interval
        data = self._jpeg.encode(frame, pts)
        name = self._name(pts)
        self._local.replace(name, data)
        self.count += 1
        self.size += len(data)
        if self.uploads is not None:
            self.uploads.submit(self.target.upload, self.dir / name, self.target.reported_prefix + name)

    def close(self) -> None:
        self._local.close()

    def result(self, ended_at: int = 0) -> ImagesResult:
        return ImagesResult(filename_prefix=f"{self.target.reported_prefix}{self.target.prefix}",
                            image_count=self.count, started_at=self.wall_start_ns, ended_at=ended_at)
