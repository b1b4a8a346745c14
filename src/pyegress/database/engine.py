"""The database: one SQLAlchemy engine per URL, its schema managed by Alembic migrations shipped in the package.

Migrations live in ``database/migrations/versions``; :func:`open_database` brings
any database to the newest revision before it is used (``pyegress serve`` and
every CLI command open it this way; ``pyegress db upgrade`` does only that).
A SQLite file made before migrations existed (its tables came from
``create_all``) is picked up by the first revision, which creates only the
tables that are missing, so such a file opens as it is.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, text

# Serialises concurrent upgrades (two `pyegress serve` starting at once) on Postgres; any constant works.
_PG_LOCK_KEY = 0x70796567  # "pyeg"


def alembic_config(url: str = "") -> Config:
    """Alembic's configuration for pyegress's migrations (no alembic.ini needed); ``url`` for the CLI."""
    cfg = Config()
    cfg.set_main_option("script_location", str(files("pyegress.database") / "migrations"))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # ConfigParser interpolation
    return cfg


def make_engine(url: str) -> Engine:
    """A SQLAlchemy engine for ``url``; a SQLite file's directory is created."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return create_engine(url)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the migrations up to ``revision`` in one transaction (on Postgres under an advisory lock)."""
    cfg = alembic_config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None before the first migration."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """The newest revision shipped with this version of pyegress."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def open_database(url: str) -> Engine:
    """An engine for ``url`` whose schema is at the newest revision.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be reached or migrated.
    """
    engine = make_engine(url)
    upgrade(engine)
    return engine
