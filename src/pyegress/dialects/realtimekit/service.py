"""Cloudflare RealtimeKit recordings on top of :class:`EgressService` (docs/realtimekit.md).

A RealtimeKit *meeting* is a LiveKit room (``meeting_id`` = room name) and its *users* are the
identities of the callers' access tokens. :mod:`.planning` says which egresses a recording starts,
:mod:`.recording` how its status follows them; this keeps the recordings (``database/realtimekit_store.py``),
starts and stops their egresses, ends them after ``max_seconds`` and adds participants who join a
track recording. Storage credentials go to the recording process only: they are neither stored nor echoed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from time import time_ns

from livekit.protocol import egress as eg

from ...database.realtimekit_store import RECORDING_STATUSES, RealtimeKitRecording, RealtimeKitStore
from ...errors import EgressError, invalid
from ...service.egress_service import EgressService
from .. import stop_quietly
from ..links import DownloadLinks
from .models import CompositeStart, TrackStart
from .planning import EgressStart, TrackPlan, composite_starts, participant_starts, track_plan
from .recording import api_call, follow, new_recording

log = logging.getLogger(__name__)
#: How often (s) a track recording without ``user_ids`` looks for participants to add.
JOIN_POLL_S = 2.0
DOWNLOAD_TTL_S = 7 * 24 * 3600  # RealtimeKit: "bucket download URLs expire after seven days"


class RealtimeKitRecordings:
    """Start, follow, list, pause/resume and stop RealtimeKit recordings for the users of the tokens.

    Every method scopes by ``user`` and (``account_id``, ``app_id``): a recording of another user is
    ``not_found``, as if it did not exist. Errors are :class:`EgressError` (``invalid_argument``
    names the RealtimeKit field in ``meta.argument``).
    """

    def __init__(self, service: EgressService, store: RealtimeKitStore, links: DownloadLinks) -> None:
        self.service = service
        self.store = store
        self.links = links
        self._timers: dict[str, asyncio.TimerHandle] = {}  # live recording ID -> its max_seconds stop
        self._followers: dict[str, asyncio.Task] = {}  # live track recording ID -> its late-joiner poll
        self._ending: set[str] = set()  # recordings being stopped: no egress may join them any more
        self._reconcile()
        service.add_listener(self._on_egress)

    # ---- starting ----------------------------------------------------------------
    async def start_composite(self, user: str, account_id: str, app_id: str,
                              req: CompositeStart) -> RealtimeKitRecording:
        """Start a composite recording of ``req.meeting_id`` (see :func:`.planning.composite_requests`).

        Raises:
            EgressError: ``invalid_argument`` naming the field, ``failed_precondition`` if the meeting
                already has a live composite recording and ``allow_multiple_recordings`` is not set,
                ``not_found`` for a meeting that is not a room.
        """
        rid = str(uuid.uuid4())
        starts = composite_starts(req, rid)
        if not req.allow_multiple_recordings and self.store.live_in_meeting(req.meeting_id, "composite"):
            raise EgressError("failed_precondition", f"meeting_id: meeting {req.meeting_id!r} already has an "
                              "active recording; set allow_multiple_recordings to start another",
                              argument="meeting_id")
        infos = await self._start_all(starts)
        return self._create(rid, user, account_id, app_id, req.meeting_id, "composite", infos,
                            storage=req.storage_config, max_seconds=req.max_seconds,
                            bucket_download=req.realtimekit_bucket_config.enabled
                            if req.realtimekit_bucket_config else True)

    async def start_track(self, user: str, account_id: str, app_id: str, req: TrackStart) -> RealtimeKitRecording:
        """Start a track recording: for each layer (:func:`.planning.track_plan`), each recorded participant's
        tracks to each output (:func:`.planning.participant_starts`). ``user_ids`` limits the participants
        (identities); without it, every participant publishing such a track, including those who join (or
        first publish) while it records: the meeting is polled every :data:`JOIN_POLL_S` s.

        Raises:
            EgressError: ``invalid_argument`` naming the field (an unknown user, nothing to record,
                bad storage), ``not_found`` for a meeting that is not a room.
        """
        room_id, participants = await self.service.participants(req.meeting_id)
        present = {p.identity: p for p in participants}
        for i, uid in enumerate(req.user_ids or []):
            if uid not in present:
                raise invalid(f"user_ids[{i}]", f"participant {uid!r} is not in meeting {req.meeting_id!r}")
        chosen = [present[u] for u in req.user_ids] if req.user_ids else sorted(participants, key=lambda p: p.identity)
        plan = track_plan(req, str(uuid.uuid4()))
        starts = [start for p in chosen for start in self._participant_starts(plan, p)]
        if not starts:
            field = "user_ids" if req.user_ids else "meeting_id"
            raise invalid(field, f"no participant in meeting {req.meeting_id!r} publishes a track to record")
        infos = await self._start_all(starts)
        row = self._create(plan.rid, user, account_id, app_id, req.meeting_id, "track", infos, session_id=room_id,
                           storage=plan.storage, max_seconds=req.max_seconds)
        if not req.user_ids:
            self._followers[plan.rid] = asyncio.create_task(self._follow_joiners(plan), name=f"joiners-{plan.rid}")
        return row

    def _participant_starts(self, plan: TrackPlan, p) -> list[EgressStart]:
        """:func:`.planning.participant_starts`, marking ``p`` recorded when there are some."""
        starts = participant_starts(plan, p)
        if starts:
            plan.recorded.add(p.identity)
        return starts

    async def _start(self, start: EgressStart) -> eg.EgressInfo:
        if isinstance(start.request, eg.RoomCompositeEgressRequest):
            return await self.service.start_room_composite(start.request, start.options)
        return await self.service.start_track_composite(start.request, start.options)

    async def _follow_joiners(self, plan: TrackPlan) -> None:
        """Record participants who were not in the meeting (or published nothing) when ``plan`` started,
        until the recording ends. While it is paused nobody is added (they are, once it resumes)."""
        while True:
            await asyncio.sleep(JOIN_POLL_S)
            row = self._joinable(plan.rid)
            if row is None:
                return
            if row.paused:
                continue
            try:
                _, participants = await self.service.participants(plan.meeting_id)
            except EgressError:  # the room is gone: its egresses end the recording
                return
            for p in participants:
                if p.identity in plan.recorded:
                    continue
                for start in self._participant_starts(plan, p):
                    try:
                        info = await self._start(start)
                    except EgressError as e:  # e.g. the track went again: this one is not recorded
                        log.warning("recording %s: cannot add %s: %s", plan.rid, p.identity, e.msg)
                        continue
                    self.store.link(plan.rid, info.egress_id, start.role)
                    log.info("recording %s: added %s (egress %s)", plan.rid, p.identity, info.egress_id)
                    if self._joinable(plan.rid) is None:  # stopped meanwhile, before this egress was linked
                        await stop_quietly(self.service, info.egress_id)

    def _joinable(self, recording_id: str) -> RealtimeKitRecording | None:
        """The recording while participants may still join it (recording or paused, not being stopped)."""
        row = self.store.get(recording_id)
        if row is None or row.status not in RECORDING_STATUSES or recording_id in self._ending:
            return None
        return row

    async def _start_all(self, starts: list[EgressStart]) -> list[tuple[eg.EgressInfo, str]]:
        """Start every egress; if one fails, stop those already started and re-raise."""
        started: list[tuple[eg.EgressInfo, str]] = []
        try:
            for start in starts:
                started.append((await self._start(start), start.role))
        except EgressError:
            for info, _ in started:
                await stop_quietly(self.service, info.egress_id)
            raise
        return started

    def _create(self, rid: str, user: str, account_id: str, app_id: str, meeting_id: str, kind: str,
                infos: list[tuple[eg.EgressInfo, str]], **row) -> RealtimeKitRecording:
        main = next(i for i, role in infos if role == "main")
        self.store.add(new_recording(rid, user, account_id, app_id, meeting_id, kind, main, **row),
                       [(i.egress_id, role) for i, role in infos])
        return self._refresh(rid)  # the egresses may have moved on while the row did not exist

    # ---- reading -----------------------------------------------------------------
    def get(self, user: str, account_id: str, app_id: str, recording_id: str) -> RealtimeKitRecording:
        """A recording of this user and app.

        Raises:
            EgressError: ``not_found`` for an unknown ID or another user's or app's recording.
        """
        row = self.store.get(recording_id)
        if row is None or (row.user_id, row.account_id, row.app_id) != (user, account_id, app_id):
            raise EgressError("not_found", f"recording {recording_id} not found", argument="recording_id")
        return row

    def active(self, user: str, account_id: str, app_id: str, meeting_id: str) -> RealtimeKitRecording:
        """The user's newest composite recording of ``meeting_id`` that is recording or paused.

        Raises:
            EgressError: ``not_found`` when there is none.
        """
        rows, _ = self.store.query(user=user, account_id=account_id, app_id=app_id, meeting_id=meeting_id,
                                   statuses=list(RECORDING_STATUSES), kind="composite", limit=1)
        if not rows:
            raise EgressError("not_found", f"meeting {meeting_id!r} has no active recording", argument="meeting_id")
        return rows[0]

    def query(self, user: str, account_id: str, app_id: str, **query) -> tuple[list[RealtimeKitRecording], int]:
        """The user's recordings of this app and the total that match (``RealtimeKitStore.query``'s filters)."""
        return self.store.query(user=user, account_id=account_id, app_id=app_id, **query)

    def download_urls(self, row: RealtimeKitRecording) -> dict:
        """``download_url``, ``audio_download_url`` and ``download_url_expiry`` (Unix ns) of a recording: set
        once it is UPLOADED, unless ``realtimekit_bucket_config.enabled`` was false (:class:`DownloadLinks`)."""
        urls: dict = {"download_url": None, "audio_download_url": None, "download_url_expiry": None}
        if row.status == "UPLOADED" and row.bucket_download:
            for f in row.files:
                key = "audio_download_url" if f["role"] == "audio" else "download_url"
                if urls[key] is None and (url := self.links.url(f["filename"], "://" not in f["location"],
                                                               DOWNLOAD_TTL_S, own_storage=row.storage is not None)):
                    urls[key] = url
                    urls["download_url_expiry"] = time_ns() + DOWNLOAD_TTL_S * 10**9
        return urls

    # ---- control -----------------------------------------------------------------
    async def act(self, user: str, account_id: str, app_id: str, recording_id: str,
                  action: str) -> RealtimeKitRecording:
        """``stop`` (stop_reason API_CALL by this user), ``pause`` (status PAUSED: nothing is recorded)
        or ``resume`` (the same files continue without a gap in their timeline).

        Raises:
            EgressError: ``not_found``; ``failed_precondition`` when the recording has ended (any action)
                or is not recording yet (pause/resume).
        """
        row = self.get(user, account_id, app_id, recording_id)
        if row.status not in RECORDING_STATUSES:
            raise EgressError("failed_precondition", f"recording {recording_id} is {row.status}, not active",
                              argument="action")
        if action == "stop":
            row.stop_reason = api_call(user)
            self.store.save(row)
            await self._stop_all(recording_id)
            return self._refresh(recording_id)
        if row.status == "INVOKED":
            raise EgressError("failed_precondition", f"recording {recording_id} has not started recording yet",
                              argument="action")
        for egress_id, _ in self.store.egresses(recording_id):
            if self.service.is_paused(egress_id) != (action == "pause"):
                try:
                    await (self.service.pause if action == "pause" else self.service.resume)(egress_id)
                except EgressError as e:  # that egress has just ended: the others still follow the action
                    log.info("recording %s: %s of %s skipped: %s", recording_id, action, egress_id, e.msg)
        row.paused = action == "pause"
        self.store.save(row)
        return self._refresh(recording_id)

    async def _stop_all(self, recording_id: str) -> None:
        self._ending.add(recording_id)
        for egress_id, _ in self.store.egresses(recording_id):
            await stop_quietly(self.service, egress_id)

    # ---- following the egresses ----------------------------------------------------
    def _on_egress(self, info: eg.EgressInfo) -> None:
        recording_id = self.store.recording_of(info.egress_id)
        if recording_id is not None:
            self._refresh(recording_id)

    def _reconcile(self) -> None:
        """Recordings left live by a previous run follow their egresses' stored state (failed by now)."""
        for row in self.store.live():
            self._refresh(row.id)

    def _refresh(self, recording_id: str) -> RealtimeKitRecording:
        """Recompute a recording from its egresses' stored EgressInfo (:func:`.recording.follow`) and save it;
        arm its ``max_seconds`` stop once it records, drop its timer and joiner poll once it has ended."""
        row = self.store.get(recording_id)
        infos = [(self.service.store.get(e), role) for e, role in self.store.egresses(recording_id)]
        phase = follow(row, [(i, role) for i, role in infos if i is not None])
        if phase == "ended":
            timer = self._timers.pop(recording_id, None)
            if timer is not None:
                timer.cancel()
            # not cancelled: it may be starting an egress; it sees the end at its next poll and returns
            self._followers.pop(recording_id, None)
            self._ending.discard(recording_id)
        elif phase == "recording" and row.max_seconds and recording_id not in self._timers:
            # counted from when recording starts (starting a worker can take seconds), pauses included
            self._timers[recording_id] = asyncio.get_running_loop().call_later(
                row.max_seconds, lambda: asyncio.ensure_future(self._stop_all(recording_id)))
        self.store.save(row)
        return row
