"""Persistence: SQLAlchemy, SQLite by default, any SQLAlchemy URL (e.g. Postgres) by configuration."""
