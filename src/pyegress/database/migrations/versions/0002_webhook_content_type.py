"""Webhook outbox rows carry their Content-Type: LiveKit's events are application/webhook+json, the
REST dialects' own webhooks (RTCstack's egress_ended, docs/wire.md) plain application/json.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("webhook_delivery", sa.Column("content_type", sa.String(64), nullable=False,
                                                server_default="application/webhook+json"))


def downgrade() -> None:
    with op.batch_alter_table("webhook_delivery") as batch:
        batch.drop_column("content_type")
