"""Results read back from the disk: what a file really holds once its handler failed or died.

A handler's own results count media handed to the encoder; after a failed write (a full disk) or a
crash the file holds less. The handler reads them back into its ``failed`` event (before its
manifests), the service when a handler died without an end. The file is the truth a user plays, so its size and the media it
contains are what ``file_results`` report.
"""

from __future__ import annotations

import logging
from pathlib import Path

import av
from livekit.protocol import egress as eg

from ..contract.events import FileResult

log = logging.getLogger(__name__)


def media_duration_ns(path: Path) -> int:
    """The span of media in the file at ``path`` in ns: from its first packet's start to its last
    packet's end over all streams, read packet by packet (a fragmented MP4 cut short has no duration in
    its header). 0 for a file without readable media.
    """
    first, last = None, 0.0
    try:
        with av.open(str(path)) as container:
            for packet in container.demux():
                if packet.pts is None or packet.time_base is None:
                    continue
                start = float(packet.pts * packet.time_base)
                end = start + float((packet.duration or 0) * packet.time_base)
                first = start if first is None else min(first, start)
                last = max(last, end)
    except (av.FFmpegError, OSError) as e:  # a truncated tail ends the reading: what came before counts
        log.info("reading %s stopped at: %s", path, e)
    return int(round((last - first) * 1e9)) if first is not None else 0


def _held(location: str) -> tuple[int, int] | None:
    """``(size in bytes, media in ns)`` of the file at ``location`` if it is one on this disk, else None
    (it went to object storage, or is gone)."""
    path = Path(location)
    if not path.is_absolute() or not path.is_file():
        return None
    return path.stat().st_size, media_duration_ns(path)


def event_files_from_disk(results: list[FileResult]) -> None:
    """Re-read each of a handler event's file ``results`` that is on this disk: ``size`` and ``duration``
    become what the file holds and ``ended_at`` follows from them. Blocks."""
    for result in results:
        held = _held(result.path)
        if held is not None:
            result.size, result.duration = held
            result.ended_at = result.started_at + result.duration if result.started_at else 0


def file_results_from_disk(info: eg.EgressInfo) -> None:
    """Re-read each of ``info.file_results`` whose ``location`` is a file on this disk, as
    :func:`event_files_from_disk` does (for an egress whose handler died). Blocks: call it in a thread."""
    for result in info.file_results:
        held = _held(result.location)
        if held is None:
            continue
        result.size, result.duration = held
        start = result.started_at or info.started_at
        result.ended_at = start + result.duration if start else 0
    if info.HasField("file") and info.file_results:  # the legacy oneof mirrors the first result
        info.file.CopyFrom(info.file_results[0])
