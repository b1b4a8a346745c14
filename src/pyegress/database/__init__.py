"""Persistence: SQLAlchemy, SQLite by default, Postgres (or any SQLAlchemy URL) by configuration.

The schema is Alembic's (``migrations/``); see ``engine.py``. A new table:
its model here (on :class:`Base`), imported below so autogenerate sees it, and
a revision made with ``pyegress db revision -m "..." --autogenerate``
(docs/architecture.md, "Database migrations").
"""

# Every model module is imported here, so Base.metadata knows every table.
from . import egress_store, realtimekit_store, recordings_store, webhook_store
from .egress_store import Base

__all__ = ["Base", "egress_store", "realtimekit_store", "recordings_store", "webhook_store"]
