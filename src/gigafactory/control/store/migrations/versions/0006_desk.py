"""The AI Act desk's ledger: models and their training runs; jobs may say which model they train, and for what.

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
    op.create_table(
        "ai_models",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(200), nullable=False),
        sa.Column("generative", sa.Boolean, nullable=False),
        sa.Column("modifies", sa.String(200), nullable=True),
        sa.Column("original_flop", sa.Float, nullable=True),
        sa.Column("original_systemic", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("clock_opened_at", sa.Float, nullable=True),
        sa.Column("notified_at", sa.Float, nullable=True),
        sa.Column("notification_note", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_ai_models_tenant", "ai_models", ["tenant"])
    op.create_table(
        "training_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("ai_models.id"), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("jobs", sa.JSON, nullable=False),
        sa.Column("planned_gpu_hours", sa.JSON, nullable=False),
        sa.Column("parameters", sa.Float, nullable=True),
        sa.Column("tokens", sa.Float, nullable=True),
        sa.Column("mfu_low", sa.Float, nullable=False),
        sa.Column("mfu_high", sa.Float, nullable=False),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        sa.Column("recorded_at", sa.Float, nullable=False),
    )
    op.create_index("ix_training_runs_model_id", "training_runs", ["model_id"])
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("ai_model", sa.Integer, nullable=True))
        batch.add_column(sa.Column("ai_purpose", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("ai_purpose")
        batch.drop_column("ai_model")
    op.drop_table("training_runs")
    op.drop_table("ai_models")
