"""Folding handler events into a ``livekit.EgressInfo``: shared by the service and by the handler, which
writes its manifests from it and reports its own end if its service died (:mod:`pyegress.handler`)."""

from __future__ import annotations

import time

from livekit.protocol import egress as eg

from .events import END_FAILURE, END_LIMIT_REACHED, HandlerEvent

S = eg.EgressStatus
#: EgressInfo.error_code of each way to end, HTTP-style as LiveKit sets them (livekit/protocol
#: ``livekit/livekit_egress.go``: SetAborted 412, SetLimitReached 413, SetFailed 500 unless the
#: error carries its own code, e.g. 503 for a lost room connection).
CODE_ABORTED, CODE_LIMIT_REACHED, CODE_FAILED = 412, 413, 500


def end_details(reason: str, reconnects: list[int] = ()) -> str:
    """EgressInfo.details of an ended egress: ``End reason: <reason>`` (LiveKit's wording), plus the
    room connection's gaps if it was lost and regained while recording."""
    details = f"End reason: {reason}"
    if reconnects:
        gaps = ", ".join(f"{gap / 1e9:.1f} s" for gap in reconnects)
        details += f" (room connection lost and regained {len(reconnects)}x, without media for {gaps})"
    return details


def set_failed(info: eg.EgressInfo, error: str, code: int = CODE_FAILED, ended_at: int = 0) -> None:
    """End ``info`` EGRESS_FAILED with ``error`` (what went wrong) and LiveKit's ``error_code``."""
    info.status, info.error, info.error_code = S.EGRESS_FAILED, error, code
    info.details = info.details or end_details(END_FAILURE)
    info.ended_at = ended_at or info.ended_at or time.time_ns()


def apply_worker_event(info: eg.EgressInfo, event: HandlerEvent, legacy: str = "") -> None:
    """Update ``info`` in place from ``event``: status, times (ns) and results.

    ``legacy`` names the legacy result oneof (``file``, ``segments``, ``stream``)
    the request used, which mirrors the first result of its kind.
    """
    if event.event == "active":
        info.status, info.started_at = S.EGRESS_ACTIVE, event.started_at
        info.room_id = info.room_id or event.room_id
    elif event.event == "ending":
        info.status = S.EGRESS_ENDING
        return
    elif event.event == "aborted":
        info.status, info.error, info.error_code = S.EGRESS_ABORTED, event.error, CODE_ABORTED
        info.details = end_details(event.reason)
        info.ended_at = event.ended_at or time.time_ns()
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
    info.manifest_location = event.manifest_location or info.manifest_location
    if event.event == "complete":
        info.ended_at, info.details = event.ended_at, end_details(event.reason, event.reconnects)
        info.status = S.EGRESS_COMPLETE
        if event.limit_reached:
            info.status, info.error, info.error_code = S.EGRESS_LIMIT_REACHED, END_LIMIT_REACHED, CODE_LIMIT_REACHED
    elif event.event == "failed":
        info.details = end_details(END_FAILURE, event.reconnects)
        set_failed(info, event.error, event.error_code or CODE_FAILED, event.ended_at)


def request_outputs(request) -> dict[str, list]:
    """The outputs a stored request asked for, by kind (``file``, ``segments``, ``stream``), in the order
    their results are reported: lists first, a legacy oneof only when its list is empty; StartEgress's
    ``outputs`` by their ``config``."""
    found: dict[str, list] = {"file": [], "segments": [], "stream": []}
    for out in getattr(request, "outputs", []):  # StartEgressRequest
        kind = out.WhichOneof("config")
        if kind in found:
            found[kind].append(getattr(out, kind))
    for kind, field_name in (("file", "file_outputs"), ("segments", "segment_outputs"), ("stream", "stream_outputs")):
        found[kind] += list(getattr(request, field_name, []))
    if "output" in {o.name for o in request.DESCRIPTOR.oneofs}:
        legacy = request.WhichOneof("output")
        if legacy in found and not found[legacy]:
            found[legacy] = [getattr(request, legacy)]
    return found
