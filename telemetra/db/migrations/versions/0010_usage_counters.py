"""usage_counters, and organizations on the old default plan moved to "unlimited"

usage_counters: readings and rejected bodies per organization (device 0) or device and UTC
day, added to by each process every TELEMETRA_USAGE_FLUSH_SECONDS (telemetra.orgs.usage).
Plans now limit what an organization may have (telemetra.orgs.plans); before, the plan
column limited nothing, so organizations on its old default, "free", move to "unlimited" and
keep what they had (new organizations get TELEMETRA_DEFAULT_PLAN, set on creation; the
column's server default stays: changing it would rebuild the table on SQLite).


Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_counters",
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("readings", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rate_limited", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("quota_exceeded", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"], ondelete="CASCADE",
                                name=op.f("fk_usage_counters_organization_id_organizations")),
        sa.PrimaryKeyConstraint("organization_id", "device_id", "day",
                                name=op.f("pk_usage_counters")),
    )
    op.execute("UPDATE organizations SET plan = 'unlimited' WHERE plan = 'free'")


def downgrade() -> None:
    op.drop_table("usage_counters")
