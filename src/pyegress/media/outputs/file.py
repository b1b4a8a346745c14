"""File output: MP4 (H.264/AAC), WebM (VP8/Opus), OGG (Opus audio) or MP3.

MP4 is written fragmented (``empty_moov`` + a fragment per second) and every
packet is flushed to the file, so a file cut short by a crash or a kill is
still playable up to its last fragment; nothing has to be rewritten at the end.
"""

from __future__ import annotations

from pathlib import Path

import av

from ...worker.protocol import FileResult, FileTarget
from ..encode import MediaEncoder
from .base import Muxer, Output

_FRAGMENT_US = 1_000_000


class FileOutput(Output):
    """Writes the encoder's packets to ``target.path`` in ``target.format``."""

    def __init__(self, target: FileTarget, encoder: MediaEncoder, wall_start_ns: int) -> None:
        self.target = target
        self.path = Path(target.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.wall_start_ns = wall_start_ns
        options = {"flush_packets": "1"}
        if target.format == "mp4":
            options |= {"movflags": "empty_moov+default_base_moof", "frag_duration": str(_FRAGMENT_US)}
        self._muxer = Muxer(str(self.path), encoder, format=target.format, options=options)

    def write_packets(self, kind: str, packets: list[av.Packet]) -> None:
        self._muxer.mux(kind, packets)

    def close(self) -> None:
        self._muxer.close()

    def result(self, duration_ns: int, ended_at: int = 0) -> FileResult:
        """``livekit.FileInfo`` fields so far (size is what is on disk now)."""
        size = self.path.stat().st_size if self.path.exists() else 0
        return FileResult(filename=self.target.filename, path=str(self.path), size=size, duration=duration_ns,
                          started_at=self.wall_start_ns, ended_at=ended_at)
