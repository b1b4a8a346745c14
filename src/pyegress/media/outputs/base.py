"""What every output shares: muxing the encoder's packets into a container of its own."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Protocol

import av
import numpy as np


def utc_stamp(wall_ns: float) -> str:
    """A UTC filename suffix with milliseconds, ``YYYYMMDDHHMMSSmmm``, for TIMESTAMP-suffixed outputs."""
    wall = datetime.fromtimestamp(wall_ns / 1e9, tz=timezone.utc)
    return f"{wall.strftime('%Y%m%d%H%M%S')}{wall.microsecond // 1000:03d}"


class Output:
    """An output sink. The encoder thread calls :meth:`write_packets` with each
    batch of encoded packets (``kind`` ``"video"`` or ``"audio"``) and
    :meth:`write_frame` / :meth:`write_audio` with every raw output frame and
    audio block (for outputs that need pictures or PCM, such as thumbnails or
    websockets); :meth:`close` finishes it."""

    def write_packets(self, kind: str, packets: list[av.Packet]) -> None:
        pass

    def write_frame(self, frame: av.VideoFrame, pts: int) -> None:
        pass

    def write_audio(self, samples: np.ndarray, pts: int) -> None:
        """Raw ``(n, channels) int16`` audio, for outputs that take PCM (websocket)."""

    def close(self) -> None:
        pass


class StreamTemplates(Protocol):
    """What gives an output container its streams: the encoder (:class:`~..encode.encoder.MediaEncoder`),
    or a track written unchanged (:class:`~..passthrough.CopiedTrack`)."""

    def add_streams(self, container: av.container.OutputContainer) -> dict[str, av.stream.Stream]:
        """Add this media's streams to ``container``: ``{"video": stream, "audio": stream}`` (either may be absent)."""


class Muxer:
    """A container with the streams of ``templates``, written to ``target``: a path or URL, or a writable
    binary file object.

    Raises:
        av.FFmpegError: the container cannot be opened.
    """

    def __init__(self, target, templates: StreamTemplates, *, format: str | None = None,
                 options: dict[str, str] | None = None) -> None:
        self.container = av.open(target, "w", format=format, options=options or {})
        self._muxed = False
        self._started = False  # the header was attempted: libavformat must not be asked to write it again
        self.streams = templates.add_streams(self.container)

    def mux(self, kind: str, packets: list[av.Packet]) -> None:
        """Write ``packets`` (the first also writes the header). Each packet keeps its timestamps and
        time base: the same packets go to every output, and muxing rescales a packet to its container's
        time base in place (Matroska's and FLV's 1/1000 s would round the next output's times to ms).

        Raises:
            av.FFmpegError: the write failed (e.g. ENOSPC); later calls and :meth:`close` stay safe.
        """
        stream = self.streams[kind]
        for packet in packets:
            timing = packet.time_base, packet.pts, packet.dts, packet.duration
            packet.stream = stream
            self._started = True
            try:
                self.container.mux(packet)
            finally:
                packet.time_base, packet.pts, packet.dts, packet.duration = timing
        self._muxed = self._muxed or bool(packets)

    def close(self) -> None:
        """Finish the container; one stopped before its first packet still gets its header and trailer,
        so the output is a valid, empty file rather than zero bytes. After a failed header write the
        file is only closed: PyAV would write the header again, and libavformat crashes doing so.

        Raises:
            av.FFmpegError: the header or trailer cannot be written.
        """
        if not self._started:
            self._started = True
            self.container.start_encoding()
        self.container.close()
