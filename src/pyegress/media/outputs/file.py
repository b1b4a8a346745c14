"""File output: MP4 (H.264/AAC), WebM (VP8/Opus), OGG (Opus audio) or MP3; or a track's own
samples, written unchanged (VP8/VP9 in WebM, H.264 in MP4, Opus in OGG).

MP4 is written fragmented (``empty_moov`` + a fragment per second) and every
packet is flushed to the file, so a file cut short by a crash or a kill is
still playable up to its last fragment; nothing has to be rewritten at the end. The file is created
new (never overwriting, never through a symlink) by :func:`~pyegress.storage.local.open_new`.
"""

from __future__ import annotations

import os
from pathlib import Path

import av

from ...storage.local import open_new
from ...contract.events import FileResult
from ...contract.job import FileTarget
from .base import Muxer, Output, StreamTemplates

_FRAGMENT_US = 1_000_000


class FileOutput(Output):
    """Writes the packets of ``templates``' streams (the encoder's, or a track's) to ``target.path`` in
    ``target.format``. If something (a file, a symlink) is there already — another egress that asked
    for the same name at the same moment — the file becomes ``name-1.ext``, ``name-2.ext``...;
    :attr:`target` and the results say which.

    Raises:
        OSError: the path is not creatable inside its directory (see ``open_new``).
    """

    def __init__(self, target: FileTarget, templates: StreamTemplates, wall_start_ns: int) -> None:
        self.wall_start_ns = wall_start_ns
        options = {"flush_packets": "1"}
        if target.format == "mp4":
            options |= {"movflags": "empty_moov+default_base_moof", "frag_duration": str(_FRAGMENT_US)}
        self._file, self.target = _create(target)
        self.path = Path(self.target.path)
        try:
            self._muxer = Muxer(self._file, templates, format=target.format, options=options)
        except BaseException:
            self._file.close()
            raise
        self._size = 0

    def write_packets(self, kind: str, packets: list[av.Packet]) -> None:
        self._muxer.mux(kind, packets)

    def close(self) -> None:
        try:
            self._muxer.close()
        finally:
            self._size = os.fstat(self._file.fileno()).st_size
            self._file.close()

    def result(self, duration_ns: int, ended_at: int = 0) -> FileResult:
        """``livekit.FileInfo`` fields so far (size is what the file holds now)."""
        size = self._size if self._file.closed else os.fstat(self._file.fileno()).st_size
        return FileResult(filename=self.target.filename, path=str(self.path), size=size, duration=duration_ns,
                          started_at=self.wall_start_ns, ended_at=ended_at)


def _create(target: FileTarget, tries: int = 1000):
    """The new file of ``target`` and the target as created: the first free of ``name.ext``,
    ``name-1.ext``, ``name-2.ext``... (the reported ``filename`` renamed alike).

    Raises:
        FileExistsError: ``tries`` names were all taken.
        OSError: the file cannot be created (see ``open_new``).
    """
    path, filename = Path(target.path), target.filename
    for n in range(tries):
        if n:
            stem, suffix = Path(target.path).stem, Path(target.path).suffix
            path = path.with_name(f"{stem}-{n}{suffix}")
            filename = target.filename.removesuffix(f"{stem}{suffix}") + path.name
        try:
            return open_new(path), target.model_copy(update={"path": str(path), "filename": filename})
        except FileExistsError:
            continue
    raise FileExistsError(17, f"{tries} names taken", target.path)
