"""The egress table: every ``EgressInfo`` the service has issued, as its protobuf bytes.

Indexed columns (room name, status) serve ListEgress filters and ``(created_at, egress_id)`` its order
and pages; the full message is the serialized ``livekit.EgressInfo``, so nothing is lost between versions.
"""

from __future__ import annotations

import time

from livekit.protocol.egress import EgressInfo, EgressStatus
from sqlalchemy import BigInteger, Index, Integer, LargeBinary, Select, String, Text, select, tuple_, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from .engine import open_database

ACTIVE_STATUSES = (EgressStatus.EGRESS_STARTING, EgressStatus.EGRESS_ACTIVE, EgressStatus.EGRESS_ENDING)


class Base(DeclarativeBase):
    """Every pyegress table; the schema itself is made by the migrations (database/migrations)."""


class EgressRow(Base):
    __tablename__ = "egress"
    __table_args__ = (Index("ix_egress_created", "created_at", "egress_id"),)

    egress_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    room_name: Mapped[str] = mapped_column(String(256), index=True)
    status: Mapped[int] = mapped_column(Integer, index=True)
    updated_at: Mapped[int] = mapped_column(BigInteger)  # ns
    created_at: Mapped[int] = mapped_column(BigInteger)  # ns, when first saved; never changes (list order)
    info: Mapped[bytes] = mapped_column(LargeBinary)
    job: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON job record; no credentials


class EgressStore:
    """Saves and queries ``EgressInfo`` messages.

    ``url`` is a SQLAlchemy URL; the database is migrated to the newest
    schema first (:func:`~pyegress.database.engine.open_database`), and
    ``engine`` is shared by the other stores.
    """

    def __init__(self, url: str) -> None:
        self.engine = open_database(url)

    def save(self, info: EgressInfo) -> None:
        with Session(self.engine) as s, s.begin():
            row = s.get(EgressRow, info.egress_id)
            if row is None:
                row = EgressRow(egress_id=info.egress_id, created_at=time.time_ns())
                s.add(row)
            row.room_name, row.status, row.updated_at = info.room_name, info.status, info.updated_at
            row.info = info.SerializeToString()

    def save_job(self, egress_id: str, job: str) -> None:
        """Keep the job record (JSON) of a saved egress beside its EgressInfo."""
        with Session(self.engine) as s, s.begin():
            s.execute(update(EgressRow).where(EgressRow.egress_id == egress_id).values(job=job))

    def get_job(self, egress_id: str) -> str | None:
        """The job record saved with :meth:`save_job`, or None."""
        with Session(self.engine) as s:
            return s.scalar(select(EgressRow.job).where(EgressRow.egress_id == egress_id))

    def get(self, egress_id: str) -> EgressInfo | None:
        with Session(self.engine) as s:
            row = s.get(EgressRow, egress_id)
            return EgressInfo.FromString(row.info) if row else None

    @staticmethod
    def _query(room_name: str, egress_id: str, active: bool) -> Select:
        q = select(EgressRow.info, EgressRow.created_at, EgressRow.egress_id).order_by(EgressRow.created_at,
                                                                                       EgressRow.egress_id)
        if room_name:
            q = q.where(EgressRow.room_name == room_name)
        if egress_id:
            q = q.where(EgressRow.egress_id == egress_id)
        if active:
            q = q.where(EgressRow.status.in_([int(s) for s in ACTIVE_STATUSES]))
        return q

    def list(self, room_name: str = "", egress_id: str = "", active: bool = False) -> list[EgressInfo]:
        """Egresses matching every given filter, in the order they were created."""
        with Session(self.engine) as s:
            return [EgressInfo.FromString(b) for b in s.scalars(self._query(room_name, egress_id, active))]

    def page(self, room_name: str, egress_id: str, active: bool, after: tuple[int, str] | None, size: int
             ) -> tuple[list[EgressInfo], tuple[int, str] | None]:
        """Up to ``size`` egresses of :meth:`list` that come after the position ``after`` (``(created_at,
        egress_id)`` of the last one seen; None: from the start), and the position of the last one returned
        when more follow (else None). Positions, not offsets, so rows that end or appear meanwhile move
        nothing: every egress is listed once."""
        q = self._query(room_name, egress_id, active)
        if after is not None:
            q = q.where(tuple_(EgressRow.created_at, EgressRow.egress_id) > tuple_(*after))
        with Session(self.engine) as s:
            rows = s.execute(q.limit(size + 1)).all()
        last = (rows[size - 1].created_at, rows[size - 1].egress_id) if len(rows) > size else None
        return [EgressInfo.FromString(r.info) for r in rows[:size]], last
