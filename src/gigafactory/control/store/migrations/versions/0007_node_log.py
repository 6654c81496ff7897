"""Every change of a node's state (up, down, drained) with its time and reason: a node's page shows its history.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("site_id", sa.Integer, sa.ForeignKey("sites.id"), nullable=False),
        sa.Column("idx", sa.Integer, nullable=False),
        sa.Column("time", sa.Float, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_node_log_node", "node_log", ["site_id", "idx", "time"])


def downgrade() -> None:
    op.drop_index("ix_node_log_node", table_name="node_log")
    op.drop_table("node_log")
