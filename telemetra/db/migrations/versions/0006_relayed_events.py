"""relayed_events: events for the other processes sharing a SQLite file

SQLite has no NOTIFY: a unit of work that records events also writes them here, in its own
transaction, and every process polls for ids above the last it read (telemetra.db.relay).
AUTOINCREMENT so that ids follow commit order and are never handed out twice: a reader that
finds one missing (pruned before it read it) knows to forget its caches. PostgreSQL relays
events with NOTIFY and leaves this table empty; it exists there too, so both databases have
one schema.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

import telemetra.db.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "relayed_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(length=32), nullable=False),
        sa.Column("messages", sa.Text(), nullable=False),
        sa.Column("created_at", telemetra.db.types.UTCDateTime(timezone=True),
                  server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_relayed_events")),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("relayed_events")
