"""Persistence: SQLAlchemy, SQLite by default, any SQLAlchemy URL (e.g. Postgres) by configuration."""

# Both modules' tables share one metadata; importing them here registers every table.
from . import egress_store, webhook_store

__all__ = ["egress_store", "webhook_store"]
