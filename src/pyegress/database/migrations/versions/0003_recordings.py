"""The recordings table of the Next.js recordings skill (its src/lib/db/schema/recordings.ts; docs/wire.md).

Columns, types, nullability and defaults are the skill's Drizzle schema, with
one widening: ``file_size`` is BIGINT, not INTEGER, since a 4500 kbps 1080p
recording passes 2^31 bytes after about an hour. Indexes on ``user_id``
(every query is per user) and ``egress_id`` (egress updates find their row).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    now = sa.func.now()
    op.create_table(
        "recordings",
        # defaultRandom(): gen_random_uuid() on Postgres; elsewhere the application supplies it
        sa.Column("id", sa.Uuid, primary_key=True,
                  server_default=sa.text("gen_random_uuid()") if postgres else None),
        sa.Column("room_name", sa.Text, nullable=False),
        sa.Column("room_sid", sa.Text),
        sa.Column("egress_id", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="starting"),
        sa.Column("layout", sa.Text, server_default="grid"),
        sa.Column("codec", sa.Text, server_default="h264"),
        sa.Column("resolution", sa.Text, server_default="1080p"),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.Column("stopped_at", sa.DateTime(timezone=True)),
        sa.Column("file_url", sa.Text),
        sa.Column("storage_key", sa.Text),
        sa.Column("file_size", sa.BigInteger),
        sa.Column("duration", sa.REAL),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=now))
    op.create_index("ix_recordings_user_id", "recordings", ["user_id"])
    op.create_index("ix_recordings_egress_id", "recordings", ["egress_id"])


def downgrade() -> None:
    op.drop_table("recordings")
