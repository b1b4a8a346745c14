"""Reading the fragmented MP4 that FFmpeg's mp4 muxer writes, box by box (ISO/IEC 14496-12, "ISO BMFF").

Only what HLS with fMP4 segments needs (``docs/hls.md``): the muxer's output is cut into its
top-level boxes as it is written (:class:`TopLevelBoxes`), the ``moov`` tells which track is which
(:func:`track_ids`) and each ``moof`` how many samples of each track its fragment holds
(:func:`fragment_samples`).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from typing import Protocol

#: Boxes whose children are boxes (only those walked here).
_CONTAINERS = frozenset({b"moov", b"trak", b"moof", b"traf"})


class BoxSink(Protocol):
    """What :class:`TopLevelBoxes` hands each top-level box to, in the order written."""

    def box_start(self, box_type: bytes, header: bytes) -> None:
        """A box of ``box_type`` begins; ``header`` is its size and type bytes (8 or 16)."""

    def box_data(self, box_type: bytes, data: memoryview) -> None:
        """The next bytes of the box's payload (a box arrives in as many pieces as it is written in)."""

    def box_end(self, box_type: bytes) -> None:
        """The box is complete."""


class TopLevelBoxes(io.RawIOBase):
    """A write-only file for a muxer that hands the top-level boxes written to it to ``sink``, streaming
    (nothing is held but a box header).

    Raises (from :meth:`write`):
        ValueError: a box size smaller than its header, or size 0 ("to the end of the file"), which a
            fragmented MP4 written as a stream never has.
    """

    def __init__(self, sink: BoxSink) -> None:
        super().__init__()
        self._sink = sink
        self._header = bytearray()
        self._type = b""
        self._left = 0  # payload bytes of the current box still to come; 0: a header is next

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        size = len(view)
        while view:
            if not self._left:
                view = self._read_header(view)
                continue
            piece = view[:self._left]
            self._sink.box_data(self._type, piece)
            self._left -= len(piece)
            view = view[len(piece):]
            if not self._left:
                self._sink.box_end(self._type)
        return size

    def _read_header(self, view: memoryview) -> memoryview:
        large = len(self._header) >= 8 and struct.unpack_from(">I", self._header)[0] == 1
        need = 16 if large else 8
        take = min(need - len(self._header), len(view))
        self._header += view[:take]
        view = view[take:]
        if len(self._header) < need:
            return view
        size, box_type = struct.unpack_from(">I4s", self._header)
        if size == 1:
            if not large:  # a 64-bit size follows the type
                return view
            size = struct.unpack_from(">Q", self._header, 8)[0]
        if size < len(self._header):
            raise ValueError(f"box {box_type!r} of size {size} in the muxer's output")
        header, self._header = bytes(self._header), bytearray()
        self._type, self._left = box_type, size - len(header)
        self._sink.box_start(box_type, header)
        if not self._left:
            self._sink.box_end(box_type)
        return view


def _boxes(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """``(type, payload)`` of each box in ``data`` (one level).

    Raises:
        ValueError: a box runs past the end of ``data``.
    """
    i = 0
    while i + 8 <= len(data):
        size, box_type = struct.unpack_from(">I4s", data, i)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", data, i + 8)[0], 16
        if size < header or i + size > len(data):
            raise ValueError(f"box {box_type!r} runs past its parent")
        yield box_type, data[i + header:i + size]
        i += size


def _find(data: bytes, path: tuple[bytes, ...]) -> Iterator[bytes]:
    """Payloads of the boxes at ``path`` below ``data`` (every match at each level)."""
    for box_type, payload in _boxes(data):
        if box_type == path[0]:
            if len(path) == 1:
                yield payload
            elif box_type in _CONTAINERS:
                yield from _find(payload, path[1:])


def track_ids(init: bytes) -> list[int]:
    """The ``track_ID`` of each track in the ``moov`` box of ``init`` (an initialization segment:
    ``ftyp`` + ``moov``), in track order (FFmpeg's mp4 muxer writes a track per stream, in stream order).

    Raises:
        ValueError: a malformed box.
    """
    ids = []
    for tkhd in _find(init, (b"moov", b"trak", b"tkhd")):
        version = tkhd[0]  # full box: version, flags; then creation and modification times (64-bit in v1)
        ids.append(struct.unpack_from(">I", tkhd, 20 if version == 1 else 12)[0])
    return ids


def fragment_samples(moof: bytes) -> dict[int, int]:
    """Samples per ``track_ID`` in the fragment whose ``moof`` box is ``moof``: each ``traf``'s ``tfhd``
    names the track, its ``trun`` boxes count the samples.

    Raises:
        ValueError: a malformed box.
    """
    counts: dict[int, int] = {}
    for traf in _find(moof, (b"moof", b"traf")):
        (tfhd,) = _find(traf, (b"tfhd",))
        track = struct.unpack_from(">I", tfhd, 4)[0]
        counts[track] = counts.get(track, 0) + sum(struct.unpack_from(">I", trun, 4)[0]
                                                   for trun in _find(traf, (b"trun",)))
    return counts
