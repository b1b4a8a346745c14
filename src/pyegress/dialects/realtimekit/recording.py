"""A RealtimeKit recording's state: the row it starts as, and how its status follows its egresses
(docs/realtimekit.md, "Status"):

==========================  =====================================
egresses                    RealtimeKit status
==========================  =====================================
all starting                INVOKED
any active                  RECORDING (PAUSED while paused)
none active, any ending     UPLOADING (outputs finishing, uploads)
all ended, a file complete  UPLOADED
all ended otherwise         ERRORED
==========================  =====================================

``stop_reason`` is API_CALL with the caller for a stop (set by the service), ALL_PEERS_LEFT when the
room emptied, INTERNAL_ERROR when no main egress completed; a ``max_seconds`` end has none.
"""

from __future__ import annotations

import time
from typing import Literal

from livekit.protocol import egress as eg

from ...contract.egress_info import end_details
from ...contract.events import END_SOURCE_CLOSED
from ...database.egress_store import ACTIVE_STATUSES
from ...database.realtimekit_store import RealtimeKitRecording
from .models import StorageConfig

S = eg.EgressStatus
_FINAL = {S.EGRESS_COMPLETE, S.EGRESS_LIMIT_REACHED}
_PEERS_LEFT = end_details(END_SOURCE_CLOSED)  # the room or its tracks ended the egress
#: What :func:`follow` found: every egress ended, one recording, one finishing, or all still starting.
Phase = Literal["ended", "recording", "ending", "starting"]


def api_call(user: str) -> dict:
    """RealtimeKit's ``start_reason``/``stop_reason`` for a call by ``user``."""
    return {"reason": "API_CALL", "caller": {"type": "USER", "name": user, "user_Id": user}}


def new_recording(rid: str, user: str, account_id: str, app_id: str, meeting_id: str, kind: str,
                  main: eg.EgressInfo, *, storage: StorageConfig | None, max_seconds, session_id: str = "",
                  bucket_download: bool = True) -> RealtimeKitRecording:
    """The row of a recording just started (INVOKED), whose ``main`` egress names its output file; only the
    public fields of ``storage`` are kept."""
    request = getattr(main, main.WhichOneof("request"))
    return RealtimeKitRecording(
        id=rid, user_id=user, account_id=account_id, app_id=app_id, meeting_id=meeting_id, kind=kind,
        status="INVOKED", paused=False, output_file_name=request.file_outputs[0].filepath.rsplit("/", 1)[-1],
        session_id=session_id or main.room_id, invoked_at=time.time_ns(), files=[],
        storage=storage.public() if storage else None, bucket_download=bucket_download,
        start_reason=api_call(user), max_seconds=float(max_seconds or 0))


def follow(row: RealtimeKitRecording, infos: list[tuple[eg.EgressInfo, str]]) -> Phase:
    """Recompute ``row`` (not saved) from its egresses' EgressInfo, each with its role (``main``, ``audio``)."""
    statuses = [i.status for i, _ in infos]
    phase: Phase = "starting"
    if statuses and all(s not in ACTIVE_STATUSES for s in statuses):
        phase = "ended"
        ok = any(i.status in _FINAL for i, role in infos if role == "main")
        row.status = "UPLOADED" if ok else "ERRORED"
        row.stopped_at = max(i.ended_at for i, _ in infos) or time.time_ns()
        row.paused = False
        if row.stop_reason is None and not ok:
            row.stop_reason = {"reason": "INTERNAL_ERROR"}
        elif row.stop_reason is None and any(i.details.startswith(_PEERS_LEFT) for i, _ in infos):
            row.stop_reason = {"reason": "ALL_PEERS_LEFT"}
        row.error = next((i.error for i, _ in infos if i.error), "")
    elif S.EGRESS_ACTIVE in statuses:
        phase = "recording"
        row.status = "PAUSED" if row.paused else "RECORDING"
    elif S.EGRESS_ENDING in statuses:
        phase = "ending"
        row.status = "UPLOADING"
    starts = [i.started_at for i, _ in infos if i.started_at]
    row.started_at = min(starts) if starts else None
    row.session_id = row.session_id or next((i.room_id for i, _ in infos if i.room_id), "")
    row.files = [{"filename": f.filename, "location": f.location, "size": f.size, "role": role}
                 for i, role in infos for f in i.file_results]
    main_files = [f for i, role in infos if role == "main" for f in i.file_results]
    row.file_size = sum(f.size for f in main_files) if main_files else None
    row.duration_s = max(f.duration for f in main_files) / 1e9 if main_files else None
    return phase
