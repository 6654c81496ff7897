"""The access programme: funders and their contributions, calls, applications and awards; jobs name and charge
awards, usage records the award each attempt charged, and tokens may be reviewers.

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
    op.create_table(
        "funders",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("country", sa.String(2), nullable=True),
        sa.Column("tenant", sa.String(100), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "contributions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("funder_id", sa.Integer, sa.ForeignKey("funders.id"), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("amount_eur", sa.Float, nullable=False),
        sa.Column("effective_at", sa.Float, nullable=False),
        sa.Column("recorded_at", sa.Float, nullable=False),
    )
    op.create_index("ix_contributions_funder_site", "contributions", ["funder_id", "site", "effective_at"])
    op.create_table(
        "calls",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("budget_gpu_hours", sa.Float, nullable=False),
        sa.Column("awarded_gpu_hours", sa.Float, nullable=False, server_default="0"),
        sa.Column("max_request_gpu_hours", sa.Float, nullable=False),
        sa.Column("opens_at", sa.Float, nullable=False),
        sa.Column("closes_at", sa.Float, nullable=False),
        sa.Column("response_days", sa.Float, nullable=False),
        sa.Column("validity_days", sa.Float, nullable=False),
        sa.Column("reviewers", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "applications",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("call_id", sa.Integer, sa.ForeignKey("calls.id"), nullable=False),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("gpu_hours", sa.Float, nullable=False),
        sa.Column("model_size", sa.String(200), nullable=False, server_default=""),
        sa.Column("purpose", sa.Text, nullable=False, server_default=""),
        sa.Column("organisation", sa.String(200), nullable=False, server_default=""),
        sa.Column("country", sa.String(2), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("submitted_at", sa.Float, nullable=False),
        sa.Column("decided_at", sa.Float, nullable=True),
        sa.Column("reviewer", sa.String(100), nullable=True),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_applications_call_id", "applications", ["call_id"])
    op.create_index("ix_applications_tenant", "applications", ["tenant"])
    op.create_table(
        "awards",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("application_id", sa.Integer, sa.ForeignKey("applications.id"), nullable=False, unique=True),
        sa.Column("call_id", sa.Integer, sa.ForeignKey("calls.id"), nullable=False),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("gpu_hours", sa.Float, nullable=False),
        sa.Column("start_at", sa.Float, nullable=False),
        sa.Column("end_at", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("changed_at", sa.Float, nullable=False),
    )
    op.create_index("ix_awards_call_id", "awards", ["call_id"])
    op.create_index("ix_awards_tenant", "awards", ["tenant"])
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("award", sa.Integer, nullable=True))
        batch.add_column(sa.Column("charged_award", sa.Integer, nullable=True))
    with op.batch_alter_table("usage") as batch:
        batch.add_column(sa.Column("award", sa.Integer, nullable=True))
        batch.create_index("ix_usage_award", ["award"])


def downgrade() -> None:
    with op.batch_alter_table("usage") as batch:
        batch.drop_index("ix_usage_award")
        batch.drop_column("award")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("charged_award")
        batch.drop_column("award")
    for table in ("awards", "applications", "calls", "contributions", "funders"):
        op.drop_table(table)
