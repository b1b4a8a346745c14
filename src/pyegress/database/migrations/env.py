"""Alembic environment of pyegress: run by pyegress.database.engine (a shared connection) or the
``pyegress db`` CLI (a URL). Autogenerate compares against every table registered in pyegress.database."""

from alembic import context
from sqlalchemy import create_engine, pool

from pyegress.database import Base

config = context.config


def run(connection) -> None:
    # SQLite cannot ALTER most things in place; batch mode recreates the table instead.
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("pyegress migrations run against a database; offline (--sql) mode is not supported")
if (shared := config.attributes.get("connection")) is not None:
    run(shared)
else:
    with create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool).connect() as conn:
        run(conn)
