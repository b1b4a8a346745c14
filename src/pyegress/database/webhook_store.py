"""The webhook outbox: one row per (event, URL), kept until delivered, so deliveries survive restarts."""

from __future__ import annotations

import time

from sqlalchemy import Float, Integer, String, Text, case, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .egress_store import Base

LIVEKIT_WEBHOOK_TYPE = "application/webhook+json"  # livekit-server's Content-Type for webhook events


class WebhookDelivery(Base):
    """A webhook to deliver. Times are Unix seconds; ``delivered_at`` is None until a 2xx answer."""

    __tablename__ = "webhook_delivery"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # event id + URL index
    event_id: Mapped[str] = mapped_column(String(64), index=True)
    event: Mapped[str] = mapped_column(String(64))
    egress_id: Mapped[str] = mapped_column(String(32), index=True)
    url: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float, index=True)
    delivered_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    content_type: Mapped[str] = mapped_column(String(64), default=LIVEKIT_WEBHOOK_TYPE)


class WebhookStore:
    """Outbox queries on the engine of an :class:`~pyegress.database.egress_store.EgressStore`."""

    def __init__(self, engine) -> None:
        self.engine = engine

    def add(self, rows: list[WebhookDelivery]) -> None:
        with Session(self.engine) as s, s.begin():
            s.add_all(rows)

    def due(self, now: float, limit: int = 50) -> list[WebhookDelivery]:
        """Undelivered rows whose next attempt is due, oldest first."""
        q = (select(WebhookDelivery).where(WebhookDelivery.delivered_at.is_(None),
                                           WebhookDelivery.next_attempt_at <= now)
             .order_by(WebhookDelivery.created_at).limit(limit))
        with Session(self.engine, expire_on_commit=False) as s:
            return list(s.scalars(q))

    def next_due_at(self) -> float | None:
        q = select(WebhookDelivery.next_attempt_at).where(WebhookDelivery.delivered_at.is_(None)) \
            .order_by(WebhookDelivery.next_attempt_at).limit(1)
        with Session(self.engine) as s:
            return s.scalar(q)

    def undelivered(self) -> tuple[int, int]:
        """How many rows are undelivered: ``(pending, given_up)``; given-up rows (``next_attempt_at`` infinite)
        wait for a replay."""
        given_up = case((WebhookDelivery.next_attempt_at == float("inf"), 1))
        q = select(func.count(), func.count(given_up)).where(WebhookDelivery.delivered_at.is_(None))
        with Session(self.engine) as s:
            undelivered, gave_up = s.execute(q).one()
        return undelivered - gave_up, gave_up

    def update(self, row_id: str, **values) -> None:
        with Session(self.engine) as s, s.begin():
            row = s.get(WebhookDelivery, row_id)
            for k, v in values.items():
                setattr(row, k, v)

    def list(self, egress_id: str = "", pending_only: bool = False) -> list[WebhookDelivery]:
        q = select(WebhookDelivery).order_by(WebhookDelivery.created_at)
        if egress_id:
            q = q.where(WebhookDelivery.egress_id == egress_id)
        if pending_only:
            q = q.where(WebhookDelivery.delivered_at.is_(None))
        with Session(self.engine, expire_on_commit=False) as s:
            return list(s.scalars(q))

    def replay(self, row_id: str) -> bool:
        """Deliver ``row_id`` again as soon as possible; False if there is no such row."""
        with Session(self.engine) as s, s.begin():
            row = s.get(WebhookDelivery, row_id)
            if row is None:
                return False
            row.delivered_at, row.next_attempt_at, row.attempts = None, time.time(), 0
            return True
