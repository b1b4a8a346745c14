"""Each egress row keeps its job record (service/job_record.py): where its outputs are on disk, so a
service restarted after a crash can read back, manifest and announce the egresses it lost.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("egress", sa.Column("job", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("egress") as batch:
        batch.drop_column("job")
