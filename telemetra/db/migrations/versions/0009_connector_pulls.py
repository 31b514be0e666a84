"""connectors: what http_pull connectors need to run (headers, timeout, last result, the
newest reading stored for {since}, the schedule and the lease of the process pulling)

(Numbered 0009 after main's 0008; the lead renumbers when merging.)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

import telemetra.db.types

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_dt = telemetra.db.types.UTCDateTime(timezone=True)
_COLUMNS = ("headers", "timeout_seconds", "last_result", "newest_reading_at", "next_run_at",
            "lease_until")


def upgrade() -> None:
    op.add_column("connectors", sa.Column("headers", telemetra.db.types.JSONType,
                                          nullable=True))
    op.add_column("connectors", sa.Column("timeout_seconds", sa.Float(), nullable=True))
    op.add_column("connectors", sa.Column("last_result", telemetra.db.types.JSONType,
                                          nullable=True))
    op.add_column("connectors", sa.Column("newest_reading_at", _dt, nullable=True))
    op.add_column("connectors", sa.Column("next_run_at", _dt, nullable=True))
    op.add_column("connectors", sa.Column("lease_until", _dt, nullable=True))
    # Existing http_pull connectors get the default timeout (API.md: 10 seconds).
    op.execute("UPDATE connectors SET timeout_seconds = 10 WHERE kind = 'http_pull'")


def downgrade() -> None:
    with op.batch_alter_table("connectors") as batch_op:
        for column in reversed(_COLUMNS):
            batch_op.drop_column(column)
