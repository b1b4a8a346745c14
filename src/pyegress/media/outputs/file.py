"""File output: MP4 (H.264/AAC), WebM (VP8/Opus) or OGG (Opus).

MP4 is written fragmented (``empty_moov`` + a fragment per second) and every
packet is flushed to the file, so a file cut short by a crash or a kill is
still playable up to its last fragment; nothing has to be rewritten at the end.
"""

from __future__ import annotations

import os
from pathlib import Path

import av

from ..encode import MediaEncoder
from .base import Muxer, Output

_FRAGMENT_US = 1_000_000


class FileOutput(Output):
    """Writes the encoder's packets to ``path``; the container follows the extension."""

    def __init__(self, path: Path, encoder: MediaEncoder) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        options = {}
        if path.suffix.lower() in (".mp4", ".m4a", ".mov"):
            options = {"movflags": "empty_moov+default_base_moof", "flush_packets": "1",
                       "frag_duration": str(_FRAGMENT_US)}
        else:
            options = {"flush_packets": "1"}
        self._muxer = Muxer(str(path), encoder, options=options)
        self.size = 0

    def write_packets(self, kind: str, packets: list[av.Packet]) -> None:
        self._muxer.mux(kind, packets)

    def close(self) -> None:
        """Finish the file; :attr:`size` is then its size in bytes."""
        self._muxer.close()
        self.size = os.path.getsize(self.path)
