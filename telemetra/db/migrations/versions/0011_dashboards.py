"""dashboards: the organization's shared dashboards and each user's own default one

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

import telemetra.db.types

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_dt = telemetra.db.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dashboards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("layout", telemetra.db.types.JSONType, nullable=False),
        sa.Column("created_at", _dt, server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", _dt, server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_dashboards_organization_id_organizations"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_dashboards_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboards")),
        sa.UniqueConstraint("user_id", name=op.f("uq_dashboards_user_id")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_dashboards_organization_id"), "dashboards", ["organization_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_dashboards_organization_id"), table_name="dashboards")
    op.drop_table("dashboards")
