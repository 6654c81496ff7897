"""Trust: tenants' uids and limits, one usage record per attempt, submission fingerprints, browser sessions.

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
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("unix_user", sa.String(64), nullable=True))
        batch.add_column(sa.Column("uid", sa.Integer, nullable=True))
        batch.add_column(sa.Column("max_jobs", sa.Integer, nullable=True))
        batch.add_column(sa.Column("max_rate", sa.Float, nullable=True))
        batch.create_index("ux_tenants_uid", ["uid"], unique=True)
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("client_hash", sa.String(64), nullable=True))
    # Earlier versions could bill an attempt twice; keep the first record of each.
    op.execute("DELETE FROM usage WHERE id NOT IN (SELECT MIN(id) FROM usage GROUP BY job_id, attempt)")
    with op.batch_alter_table("usage") as batch:
        batch.create_index("ux_usage_job_attempt", ["job_id", "attempt"], unique=True)
    op.create_table(
        "sessions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("token_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("used", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sessions")
    with op.batch_alter_table("usage") as batch:
        batch.drop_index("ux_usage_job_attempt")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("client_hash")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_index("ux_tenants_uid")
        for name in ("max_rate", "max_jobs", "uid", "unix_user"):
            batch.drop_column(name)
