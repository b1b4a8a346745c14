"""Image output: a JPEG thumbnail of the output picture every ``interval_s`` seconds."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

from ...storage.local import LocalDir
from ...contract.events import ImagesResult
from ...contract.job import ImagesTarget
from .base import Output, utc_stamp


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
        self._jpeg = av.CodecContext.create("mjpeg", "w")
        self._jpeg.width, self._jpeg.height, self._jpeg.pix_fmt = self.width, self.height, "yuvj420p"
        self._jpeg.time_base = Fraction(1, framerate)
        self._jpeg.options = {"qmin": "2", "qmax": "5"}
        self._jpeg.open()

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
        image = frame.reformat(width=self.width, height=self.height, format="yuvj420p")
        image.pts = pts
        data = b"".join(bytes(p) for p in self._jpeg.encode(image))
        name = self._name(pts)
        self._local.replace(name, data)
        self.count += 1
        if self.uploads is not None:
            self.uploads.submit(self.target.upload, self.dir / name, self.target.reported_prefix + name)

    def close(self) -> None:
        self._local.close()

    def result(self, ended_at: int = 0) -> ImagesResult:
        return ImagesResult(filename_prefix=f"{self.target.reported_prefix}{self.target.prefix}",
                            image_count=self.count, started_at=self.wall_start_ns, ended_at=ended_at)
