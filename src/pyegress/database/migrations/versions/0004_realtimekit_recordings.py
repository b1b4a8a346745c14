"""The RealtimeKit recordings dialect's tables (database/realtimekit_store.py).

``realtimekit_recording``: one row per recording (the recording object of ``docs/wire.md``),
owned by ``user_id`` (the identity of the caller's token) under
(``account_id``, ``app_id``); times in ns since the Unix epoch, never any
storage credential. ``realtimekit_recording_egress``: the egresses of each
recording, found by egress ID when an egress changes.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "realtimekit_recording",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(256), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("app_id", sa.String(64), nullable=False),
        sa.Column("meeting_id", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("paused", sa.Boolean, nullable=False),
        sa.Column("output_file_name", sa.Text, nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("invoked_at", sa.BigInteger, nullable=False),
        sa.Column("started_at", sa.BigInteger),
        sa.Column("stopped_at", sa.BigInteger),
        sa.Column("duration_s", sa.Float),
        sa.Column("file_size", sa.BigInteger),
        sa.Column("files", sa.JSON, nullable=False),
        sa.Column("storage", sa.JSON),
        sa.Column("bucket_download", sa.Boolean, nullable=False),
        sa.Column("start_reason", sa.JSON),
        sa.Column("stop_reason", sa.JSON),
        sa.Column("max_seconds", sa.Float, nullable=False),
        sa.Column("error", sa.Text, nullable=False))
    for column in ("user_id", "meeting_id", "status", "invoked_at"):
        op.create_index(f"ix_realtimekit_recording_{column}", "realtimekit_recording", [column])
    op.create_table(
        "realtimekit_recording_egress",
        sa.Column("egress_id", sa.String(32), primary_key=True),
        sa.Column("recording_id", sa.String(36), sa.ForeignKey("realtimekit_recording.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("role", sa.String(8), nullable=False))
    op.create_index("ix_realtimekit_recording_egress_recording_id", "realtimekit_recording_egress",
                    ["recording_id"])


def downgrade() -> None:
    op.drop_table("realtimekit_recording_egress")
    op.drop_table("realtimekit_recording")
