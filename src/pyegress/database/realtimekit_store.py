"""RealtimeKit recordings: the dialect's own bookkeeping beside the egress table.

A RealtimeKit recording (``docs/wire.md``, "Cloudflare RealtimeKit recordings") is
one composite egress, or for a track recording one egress per recorded track
and output; :class:`RealtimeKitRecordingEgress` links them. Storage
credentials are never stored: ``storage`` keeps only the fields RealtimeKit
echoes back (type, bucket, region, path, host, port, username, auth_method).
Times are ns since the Unix epoch, sizes bytes, durations s.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .egress_store import Base

#: Statuses of a recording that has not ended (RealtimeKit's recording object).
RECORDING_STATUSES = ("INVOKED", "RECORDING", "PAUSED")  # before stop: actions apply, participants join
LIVE_STATUSES = (*RECORDING_STATUSES, "UPLOADING")


class RealtimeKitRecording(Base):
    """One recording as RealtimeKit reports it, owned by ``user_id`` under (``account_id``, ``app_id``)."""

    __tablename__ = "realtimekit_recording"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # uuid4, as RealtimeKit's
    user_id: Mapped[str] = mapped_column(String(256), index=True)  # identity of the caller's token
    account_id: Mapped[str] = mapped_column(String(64))
    app_id: Mapped[str] = mapped_column(String(64))
    meeting_id: Mapped[str] = mapped_column(String(256), index=True)  # a LiveKit room name
    kind: Mapped[str] = mapped_column(String(16))  # "composite" | "track"
    status: Mapped[str] = mapped_column(String(16), index=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    output_file_name: Mapped[str] = mapped_column(Text)
    session_id: Mapped[str] = mapped_column(String(64), default="")  # the LiveKit room SID
    invoked_at: Mapped[int] = mapped_column(BigInteger, index=True)
    started_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    stopped_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    file_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # [{"filename", "location", "size", "audio"}] of the finished files, in request order
    files: Mapped[list] = mapped_column(JSON, default=list)
    storage: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # public storage_config fields
    bucket_download: Mapped[bool] = mapped_column(Boolean, default=True)  # realtimekit_bucket_config.enabled
    start_reason: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    stop_reason: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    max_seconds: Mapped[float] = mapped_column(Float, default=0.0)  # 0: no limit
    error: Mapped[str] = mapped_column(Text, default="")


class RealtimeKitRecordingEgress(Base):
    """Which egress belongs to which recording; ``role`` is ``main`` or ``audio`` (the audio export)."""

    __tablename__ = "realtimekit_recording_egress"

    egress_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    recording_id: Mapped[str] = mapped_column(ForeignKey("realtimekit_recording.id", ondelete="CASCADE"),
                                              index=True)
    position: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(8), default="main")


class RealtimeKitStore:
    """Queries on the engine of an :class:`~pyegress.database.egress_store.EgressStore` (tables created there)."""

    def __init__(self, engine) -> None:
        self.engine = engine

    def add(self, row: RealtimeKitRecording, egresses: list[tuple[str, str]]) -> None:
        """Store a new recording with its ``(egress_id, role)`` list."""
        with Session(self.engine) as s, s.begin():
            s.add(row)
            s.flush()
            s.add_all(RealtimeKitRecordingEgress(egress_id=e, recording_id=row.id, position=i, role=role)
                      for i, (e, role) in enumerate(egresses))

    def link(self, recording_id: str, egress_id: str, role: str = "main") -> None:
        """Add an egress to a stored recording, after those it has."""
        with Session(self.engine) as s, s.begin():
            last = s.execute(select(func.max(RealtimeKitRecordingEgress.position))
                             .where(RealtimeKitRecordingEgress.recording_id == recording_id)).scalar()
            s.add(RealtimeKitRecordingEgress(egress_id=egress_id, recording_id=recording_id,
                                             position=(last if last is not None else -1) + 1, role=role))

    def get(self, recording_id: str) -> RealtimeKitRecording | None:
        with Session(self.engine, expire_on_commit=False) as s:
            return s.get(RealtimeKitRecording, recording_id)

    def save(self, row: RealtimeKitRecording) -> None:
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            s.merge(row)

    def egresses(self, recording_id: str) -> list[tuple[str, str]]:
        """``(egress_id, role)`` of a recording, in request order."""
        q = (select(RealtimeKitRecordingEgress.egress_id, RealtimeKitRecordingEgress.role)
             .where(RealtimeKitRecordingEgress.recording_id == recording_id)
             .order_by(RealtimeKitRecordingEgress.position))
        with Session(self.engine) as s:
            return [(e, r) for e, r in s.execute(q)]

    def recording_of(self, egress_id: str) -> str | None:
        with Session(self.engine) as s:
            link = s.get(RealtimeKitRecordingEgress, egress_id)
            return link.recording_id if link else None

    def query(self, *, user: str, account_id: str, app_id: str, meeting_id: str = "",
              statuses: list[str] | None = None, kind: str = "", invoked_from: int | None = None,
              invoked_to: int | None = None, descending: bool = True, offset: int = 0,
              limit: int | None = None) -> tuple[list[RealtimeKitRecording], int]:
        """One page of a user's recordings matching every given filter, by ``invoked_at``; and the total."""
        q = select(RealtimeKitRecording).where(RealtimeKitRecording.user_id == user,
                                               RealtimeKitRecording.account_id == account_id,
                                               RealtimeKitRecording.app_id == app_id)
        if meeting_id:
            q = q.where(RealtimeKitRecording.meeting_id == meeting_id)
        if statuses:
            q = q.where(RealtimeKitRecording.status.in_(statuses))
        if kind:
            q = q.where(RealtimeKitRecording.kind == kind)
        if invoked_from is not None:
            q = q.where(RealtimeKitRecording.invoked_at >= invoked_from)
        if invoked_to is not None:
            q = q.where(RealtimeKitRecording.invoked_at <= invoked_to)
        order = RealtimeKitRecording.invoked_at.desc() if descending else RealtimeKitRecording.invoked_at.asc()
        with Session(self.engine, expire_on_commit=False) as s:
            total = s.scalar(select(func.count()).select_from(q.subquery()))
            page = q.order_by(order).offset(offset)
            if limit is not None:
                page = page.limit(limit)
            return list(s.scalars(page)), int(total or 0)

    def live_in_meeting(self, meeting_id: str, kind: str) -> list[RealtimeKitRecording]:
        """Every user's recordings of ``kind`` in ``meeting_id`` that have not ended."""
        q = select(RealtimeKitRecording).where(RealtimeKitRecording.meeting_id == meeting_id,
                                               RealtimeKitRecording.kind == kind,
                                               RealtimeKitRecording.status.in_(LIVE_STATUSES))
        with Session(self.engine, expire_on_commit=False) as s:
            return list(s.scalars(q))

    def live(self) -> list[RealtimeKitRecording]:
        """Every recording that has not ended (to reconcile after a restart)."""
        q = select(RealtimeKitRecording).where(RealtimeKitRecording.status.in_(LIVE_STATUSES))
        with Session(self.engine, expire_on_commit=False) as s:
            return list(s.scalars(q))
