"""The ``recordings`` table of the recordings API dialect (``docs/wire.md``): one row per recording a user started.

Columns are the Next.js recordings skill's Drizzle schema (``src/lib/db/schema/recordings.ts``);
the table is made by migration 0003. Every query takes the user ID, so one
user never reads or changes another's rows.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from sqlalchemy import REAL, BigInteger, DateTime, Text, Uuid, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .egress_store import Base

#: Statuses of a recording (the skill's ``RecordingStatusValue``); the last two are final.
STATUSES = ("starting", "active", "stopping", "completed", "failed")
FINAL_STATUSES = ("completed", "failed")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Recording(Base):
    """A recording. Times are timezone-aware UTC; ``duration`` in seconds, ``file_size`` in bytes;
    ``storage_key`` is the file's key relative to the recordings directory or the storage prefix."""

    __tablename__ = "recordings"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    room_name: Mapped[str] = mapped_column(Text)
    room_sid: Mapped[str | None] = mapped_column(Text)
    egress_id: Mapped[str] = mapped_column(Text, index=True)
    status: Mapped[str] = mapped_column(Text, default="starting")
    layout: Mapped[str | None] = mapped_column(Text, default="grid")
    codec: Mapped[str | None] = mapped_column(Text, default="h264")
    resolution: Mapped[str | None] = mapped_column(Text, default="1080p")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    file_url: Mapped[str | None] = mapped_column(Text)
    storage_key: Mapped[str | None] = mapped_column(Text)
    file_size: Mapped[int | None] = mapped_column(BigInteger)
    duration: Mapped[float | None] = mapped_column(REAL)
    user_id: Mapped[str] = mapped_column(Text, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RecordingStore:
    """Queries on the ``recordings`` table, on the engine of an :class:`~pyegress.database.egress_store.EgressStore`."""

    def __init__(self, engine) -> None:
        self.engine = engine

    def add(self, recording: Recording) -> Recording:
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            s.add(recording)
        return recording

    def get(self, recording_id: uuid.UUID, user_id: str) -> Recording | None:
        """The user's recording ``recording_id``; None if it does not exist or belongs to someone else."""
        q = select(Recording).where(Recording.id == recording_id, Recording.user_id == user_id)
        with Session(self.engine, expire_on_commit=False) as s:
            return s.scalars(q).first()

    def list(self, user_id: str, room_name: str = "", limit: int = 50) -> list[Recording]:
        """The user's recordings, newest first, at most ``limit``; only ``room_name``'s if given."""
        q = select(Recording).where(Recording.user_id == user_id)
        if room_name:
            q = q.where(Recording.room_name == room_name)
        q = q.order_by(Recording.created_at.desc(), Recording.id).limit(limit)
        with Session(self.engine, expire_on_commit=False) as s:
            return list(s.scalars(q))

    def unfinished(self) -> list[Recording]:
        """Recordings not yet completed or failed, of every user."""
        with Session(self.engine, expire_on_commit=False) as s:
            return list(s.scalars(select(Recording).where(Recording.status.not_in(FINAL_STATUSES))))

    def by_egress(self, egress_id: str) -> list[Recording]:
        with Session(self.engine, expire_on_commit=False) as s:
            return list(s.scalars(select(Recording).where(Recording.egress_id == egress_id)))

    def update(self, recording_id: uuid.UUID, **values) -> Recording | None:
        """Set ``values`` and ``updated_at``; returns the row, or None if it no longer exists."""
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            row = s.get(Recording, recording_id)
            if row is None:
                return None
            for k, v in values.items():
                setattr(row, k, v)
            row.updated_at = utcnow()
            return row

    def delete(self, recording_id: uuid.UUID) -> None:
        with Session(self.engine) as s, s.begin():
            row = s.get(Recording, recording_id)
            if row is not None:
                s.delete(row)
