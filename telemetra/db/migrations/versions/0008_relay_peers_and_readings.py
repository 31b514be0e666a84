"""relay_peers and relayed_readings: the processes sharing a SQLite file, and readings for them

relay_peers: each process's heartbeat, interests and how far it has applied relayed_events, so
that a change that must be seen everywhere (a rotated key) is answered once every live process
applied it. relayed_readings: committed readings sent to another process that asked for them
(live views), one row per batch and target, kept seconds. PostgreSQL uses notifications for
both and leaves them empty; they exist there too, so both databases have one schema.

(Numbered 0008 beside another branch's 0007; the lead renumbers when merging.)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "relay_peers",
        sa.Column("origin", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("interests", sa.Text(), nullable=False),
        sa.Column("heard", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("origin", name=op.f("pk_relay_peers")),
    )
    op.create_table(
        "relayed_readings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_relayed_readings")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_relayed_readings_target_id", "relayed_readings", ["target", "id"])


def downgrade() -> None:
    op.drop_index("ix_relayed_readings_target_id", table_name="relayed_readings")
    op.drop_table("relayed_readings")
    op.drop_table("relay_peers")
