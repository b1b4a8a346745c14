"""Each egress row keeps when it was first saved: ListEgress lists in that order and pages by it
(``page_token``, livekit_egress.proto), which ``updated_at`` cannot do as it changes. Rows from before
take their ``updated_at``.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("egress", sa.Column("created_at", sa.BigInteger, nullable=False, server_default="0"))
    op.execute("UPDATE egress SET created_at = updated_at")
    with op.batch_alter_table("egress") as batch:
        batch.alter_column("created_at", server_default=None)
    op.create_index("ix_egress_created", "egress", ["created_at", "egress_id"])


def downgrade() -> None:
    op.drop_index("ix_egress_created", "egress")
    with op.batch_alter_table("egress") as batch:
        batch.drop_column("created_at")
