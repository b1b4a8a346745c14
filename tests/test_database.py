"""The schema comes from Alembic migrations, on SQLite and on a real PostgreSQL server, and databases made
before migrations existed still open with their data."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from livekit.protocol import egress as eg

from pyegress.database import Base, engine as database
from pyegress.database.egress_store import EgressStore
from pyegress.database.recordings_store import Recording, RecordingStore
from pyegress.database.webhook_store import WebhookDelivery, WebhookStore

TABLES = {"alembic_version", "egress", "webhook_delivery", "recordings"}
#: The Next.js recordings skill's Drizzle schema (recordings.ts, docs/wire.md): column -> nullable.
SEED_RECORDINGS_COLUMNS = {
    "id": False, "room_name": False, "room_sid": True, "egress_id": False, "status": False, "layout": True,
    "codec": True, "resolution": True, "started_at": False, "stopped_at": True, "file_url": True,
    "storage_key": True, "file_size": True, "duration": True, "user_id": False, "created_at": False,
    "updated_at": False}


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'pyegress.db'}"
    return request.getfixturevalue("postgres").create_database(f"t_{uuid.uuid4().hex[:12]}")


def test_migrations_make_the_schema_of_the_models(db_url):
    store = EgressStore(db_url)
    inspector = sa.inspect(store.engine)
    assert TABLES <= set(inspector.get_table_names())
    assert database.current_revision(store.engine) == database.head_revision()
    columns = {c["name"]: c["nullable"] for c in inspector.get_columns("recordings")}
    assert columns == SEED_RECORDINGS_COLUMNS
    with store.engine.connect() as conn:  # nothing a model declares is missing from the migrations
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    EgressStore(db_url)  # opening again is a no-op
    store.engine.dispose()


def test_stores_work_on_the_migrated_schema(db_url):
    store = EgressStore(db_url)
    info = eg.EgressInfo(egress_id="EG_db1", room_name="r", status=eg.EgressStatus.EGRESS_ACTIVE)
    store.save(info)
    assert store.list(room_name="r", active=True)[0].egress_id == "EG_db1"
    recordings = RecordingStore(store.engine)
    row = recordings.add(Recording(room_name="r", egress_id="EG_db1", user_id="alice"))
    assert recordings.get(row.id, "alice").status == "starting"  # the skill's defaults
    assert recordings.get(row.id, "bob") is None
    assert recordings.update(row.id, status="completed", duration=3.5, file_size=5 * 2**31).file_size == 5 * 2**31
    assert [r.duration for r in recordings.list("alice", "r")] == [3.5]
    with store.engine.begin() as conn:  # the database fills the skill's server defaults itself
        conn.execute(sa.text("INSERT INTO recordings (id, room_name, egress_id, user_id) "
                             "VALUES (:id, 'r', 'EG_db2', 'carol')"),
                     {"id": uuid.uuid4().hex if store.engine.dialect.name == "sqlite" else str(uuid.uuid4())})
    (carol,) = recordings.list("carol")
    assert (carol.status, carol.layout, carol.codec, carol.resolution) == ("starting", "grid", "h264", "1080p")
    assert carol.created_at is not None and carol.started_at is not None
    webhooks = WebhookStore(store.engine)  # the outbox's depth (metrics): pending, given up, delivered
    webhooks.add([WebhookDelivery(id=f"EV_{i}-0", event_id=f"EV_{i}", event="egress_ended", egress_id="EG_db1",
                                  url="http://hooks", body="{}", created_at=i, next_attempt_at=at)
                  for i, at in enumerate([0.0, 5.0, float("inf"), 0.0])])
    webhooks.update("EV_3-0", delivered_at=1.0)
    assert webhooks.undelivered() == (2, 1)
    store.engine.dispose()


def test_a_database_from_before_migrations_opens_with_its_data(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript((Path(__file__).parent / "data/pre_migration_schema.sql").read_text())
    info = eg.EgressInfo(egress_id="EG_old", room_name="old-room", status=eg.EgressStatus.EGRESS_COMPLETE)
    conn.execute("INSERT INTO egress VALUES (?, ?, ?, ?, ?)", ("EG_old", "old-room", info.status, 1, info.SerializeToString()))
    conn.execute("INSERT INTO webhook_delivery VALUES ('EV_1-0', 'EV_1', 'egress_ended', 'EG_old', 'http://x/h', "
                 "'{}', 1.0, 0, 1.0, NULL, '')")
    conn.commit()
    conn.close()

    store = EgressStore(f"sqlite:///{path}")
    assert database.current_revision(store.engine) == database.head_revision()
    assert store.get("EG_old").room_name == "old-room"
    with store.engine.connect() as conn:  # ListEgress's order: rows from before it take their updated_at
        assert conn.execute(sa.text("SELECT created_at FROM egress WHERE egress_id = 'EG_old'")).scalar() == 1
    (pending,) = WebhookStore(store.engine).list(pending_only=True)
    assert pending.content_type == "application/webhook+json"  # old rows keep LiveKit's webhook type
    assert RecordingStore(store.engine).list("anyone") == []


def test_db_cli_upgrades_and_reports(tmp_path):
    env = {"PYEGRESS_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "PATH": "/usr/bin:/bin"}

    def run(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "pyegress", "db", *args], env=env, capture_output=True,
                              text=True, check=True).stdout

    assert "current none" in run("current")
    head = database.head_revision()
    assert run("upgrade").strip() == f"database at revision {head}"
    assert run("current").strip() == f"current {head}, head {head}"
