"""The egress table: every ``EgressInfo`` the service has issued, as its protobuf bytes.

Indexed columns (room name, status) serve ListEgress filters; the full message
is the serialized ``livekit.EgressInfo``, so nothing is lost between versions.
"""

from __future__ import annotations

from livekit.protocol.egress import EgressInfo, EgressStatus
from sqlalchemy import BigInteger, Integer, LargeBinary, String, Text, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from .engine import open_database

ACTIVE_STATUSES = (EgressStatus.EGRESS_STARTING, EgressStatus.EGRESS_ACTIVE, EgressStatus.EGRESS_ENDING)


class Base(DeclarativeBase):
    """Every pyegress table; the schema itself is made by the migrations (database/migrations)."""


class EgressRow(Base):
    __tablename__ = "egress"

    egress_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    room_name: Mapped[str] = mapped_column(String(256), index=True)
    status: Mapped[int] = mapped_column(Integer, index=True)
    updated_at: Mapped[int] = mapped_column(BigInteger)  # ns
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
            s.merge(EgressRow(egress_id=info.egress_id, room_name=info.room_name, status=info.status,
                              updated_at=info.updated_at, info=info.SerializeToString()))

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

    def list(self, room_name: str = "", egress_id: str = "", active: bool = False) -> list[EgressInfo]:
        """Egresses matching every given filter, oldest first."""
        q = select(EgressRow.info).order_by(EgressRow.updated_at)
        if room_name:
            q = q.where(EgressRow.room_name == room_name)
        if egress_id:
            q = q.where(EgressRow.egress_id == egress_id)
        if active:
            q = q.where(EgressRow.status.in_([int(s) for s in ACTIVE_STATUSES]))
        with Session(self.engine) as s:
            return [EgressInfo.FromString(b) for b in s.scalars(q)]
