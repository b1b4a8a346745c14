"""Folding worker events into a ``livekit.EgressInfo``: shared by the service and by a worker
that must report its own end (its service died; see :mod:`pyegress.worker.__main__`)."""

from __future__ import annotations

import time

from livekit.protocol import egress as eg

from ..worker.protocol import WorkerEvent

S = eg.EgressStatus


def apply_worker_event(info: eg.EgressInfo, event: WorkerEvent, legacy: str = "") -> None:
    """Update ``info`` in place from ``event``: status, times (ns) and results.

    ``legacy`` names the legacy result oneof (``file``, ``segments``, ``stream``)
    the request used, which mirrors the first result of its kind.
    """
    if event.event == "active":
        info.status, info.started_at = S.EGRESS_ACTIVE, event.started_at
        info.room_id = info.room_id or event.room_id
        return
    if event.event == "ending":
        info.status = S.EGRESS_ENDING
        return
    del info.file_results[:], info.segment_results[:], info.image_results[:]
    for f in event.files:
        info.file_results.add(filename=f.filename, location=f.path, size=f.size, duration=f.duration,
                              started_at=f.started_at, ended_at=f.ended_at)
    for g in event.segments:
        info.segment_results.add(**g.model_dump())
    for i in event.images:
        info.image_results.add(**i.model_dump())
    if event.streams:
        del info.stream_results[:]
        for st in event.streams:
            info.stream_results.add(**st.model_dump(exclude={"status"}), status=eg.StreamInfo.Status.Value(st.status))

    if legacy == "file" and info.file_results:
        info.file.CopyFrom(info.file_results[0])
    elif legacy == "segments" and info.segment_results:
        info.segments.CopyFrom(info.segment_results[0])
    elif legacy == "stream" and info.stream_results:
        del info.stream.info[:]
        info.stream.info.extend(info.stream_results)
    info.backup_storage_used = info.backup_storage_used or event.backup_storage_used
    if event.event == "complete":
        info.status = S.EGRESS_LIMIT_REACHED if event.limit_reached else S.EGRESS_COMPLETE
        info.ended_at, info.details = event.ended_at, event.reason
    elif event.event == "failed":
        info.status, info.error = S.EGRESS_FAILED, event.error
        info.ended_at = event.ended_at or time.time_ns()
