"""Baseline: the egress table and the webhook outbox, as pyegress created them before migrations.

Databases from that time already have some or all of these tables (made by
SQLAlchemy's create_all, same names, columns and indexes), so each table is
created only if it is missing; after this revision every change is an
ordinary migration.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "egress" not in existing:
        op.create_table(
            "egress",
            sa.Column("egress_id", sa.String(32), primary_key=True),
            sa.Column("room_name", sa.String(256), nullable=False),
            sa.Column("status", sa.Integer, nullable=False),
            sa.Column("updated_at", sa.BigInteger, nullable=False),
            sa.Column("info", sa.LargeBinary, nullable=False))
        op.create_index("ix_egress_room_name", "egress", ["room_name"])
        op.create_index("ix_egress_status", "egress", ["status"])
    if "webhook_delivery" not in existing:
        op.create_table(
            "webhook_delivery",
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("event_id", sa.String(64), nullable=False),
            sa.Column("event", sa.String(64), nullable=False),
            sa.Column("egress_id", sa.String(32), nullable=False),
            sa.Column("url", sa.Text, nullable=False),
            sa.Column("body", sa.Text, nullable=False),
            sa.Column("created_at", sa.Float, nullable=False),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("next_attempt_at", sa.Float, nullable=False),
            sa.Column("delivered_at", sa.Float, nullable=True),
            sa.Column("last_error", sa.Text, nullable=False))
        op.create_index("ix_webhook_delivery_event_id", "webhook_delivery", ["event_id"])
        op.create_index("ix_webhook_delivery_egress_id", "webhook_delivery", ["egress_id"])
        op.create_index("ix_webhook_delivery_next_attempt_at", "webhook_delivery", ["next_attempt_at"])


def downgrade() -> None:
    op.drop_table("webhook_delivery")
    op.drop_table("egress")
