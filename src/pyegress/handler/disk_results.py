"""Results read back from the disk: what a file really holds once its handler failed or died.

A handler's own results count media handed to the encoder; after a failed write (a full disk) or a
crash the file holds less. The handler reads them back when it fails (before its manifests), the
service when a handler died without an end. The file is the truth a user plays, so its size and the media it
contains are what ``file_results`` report.
"""

from __future__ import annotations

import logging
from pathlib import Path

import av
from livekit.protocol import egress as eg

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


def file_results_from_disk(info: eg.EgressInfo) -> None:
    """Re-read each of ``info.file_results`` whose ``location`` is a file on this disk: ``size`` and
    ``duration`` become what the file holds and ``ended_at`` follows from them. Results whose file went
    to object storage (or is gone) are left as they are. Blocks: call it in a thread."""
    for result in info.file_results:
        path = Path(result.location)
        if not path.is_absolute() or not path.is_file():
            continue
        result.size = path.stat().st_size
        result.duration = media_duration_ns(path)
        start = result.started_at or info.started_at
        result.ended_at = start + result.duration if start else 0
    if info.HasField("file") and info.file_results:  # the legacy oneof mirrors the first result
        info.file.CopyFrom(info.file_results[0])
