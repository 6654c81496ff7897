"""A network of sites: sites carry their country, energy figures and executor; jobs and usage carry their site, and
jobs their residency (allowed sites and countries) and whether they may be rerouted.

A store from before holds one site: every job that left ``submitted`` and every usage record belongs to it.

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
    with op.batch_alter_table("sites") as batch:
        batch.add_column(sa.Column("country", sa.String(2), nullable=True))
        batch.add_column(sa.Column("price_eur_mwh", sa.Float, nullable=True))
        batch.add_column(sa.Column("carbon_g_kwh", sa.Float, nullable=True))
        batch.add_column(sa.Column("pue", sa.Float, nullable=True))
        batch.add_column(sa.Column("power_cap_mw", sa.Float, nullable=True))
        batch.add_column(sa.Column("executor", sa.JSON, nullable=True))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("site", sa.String(64), nullable=True))
        batch.add_column(sa.Column("sites", sa.JSON, nullable=True))
        batch.add_column(sa.Column("countries", sa.JSON, nullable=True))
        batch.add_column(sa.Column("reroute", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.create_index("ix_jobs_site_state", ["site", "state"])
    with op.batch_alter_table("usage") as batch:
        batch.add_column(sa.Column("site", sa.String(64), nullable=True))
    # The one site of an older store owns everything routed so far.
    op.execute("UPDATE jobs SET site = (SELECT name FROM sites ORDER BY id LIMIT 1) WHERE state != 'submitted'")
    op.execute("UPDATE usage SET site = (SELECT name FROM sites ORDER BY id LIMIT 1)")


def downgrade() -> None:
    with op.batch_alter_table("usage") as batch:
        batch.drop_column("site")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_site_state")
        for name in ("reroute", "countries", "sites", "site"):
            batch.drop_column(name)
    with op.batch_alter_table("sites") as batch:
        for name in ("executor", "power_cap_mw", "pue", "carbon_g_kwh", "price_eur_mwh", "country"):
            batch.drop_column(name)
