"""Submission keys: a client may name each submission, so that a retry after a lost answer does not submit twice.

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
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("client_key", sa.String(100), nullable=True))
        batch.create_index("ux_jobs_tenant_client_key", ["tenant", "client_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ux_jobs_tenant_client_key")
        batch.drop_column("client_key")
