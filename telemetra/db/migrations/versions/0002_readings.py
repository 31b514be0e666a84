"""readings: the hot table, range-partitioned by month on PostgreSQL

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from alembic import op
import sqlalchemy as sa

import telemetra.db.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Partitions are created ahead (and on demand) by telemetra.ingest.partitions.
        op.execute("""
            CREATE TABLE readings (
                sensor_id integer NOT NULL,
                ts timestamptz NOT NULL,
                value double precision NOT NULL,
                flags smallint DEFAULT '0' NOT NULL,
                tags jsonb,
                meta jsonb,
                CONSTRAINT pk_readings PRIMARY KEY (sensor_id, ts),
                CONSTRAINT fk_readings_sensor_id_sensors FOREIGN KEY (sensor_id)
                    REFERENCES sensors (id) ON DELETE CASCADE
            ) PARTITION BY RANGE (ts)
        """)
        return
    op.create_table(
        "readings",
        sa.Column("sensor_id", sa.Integer(), nullable=False),
        sa.Column("ts", telemetra.db.types.ReadingTime(), nullable=False),
        sa.Column("value", sa.Float(precision=53), nullable=False),
        sa.Column("flags", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("tags", sa.JSON(), nullable=True),
        sa.Column("meta", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["sensor_id"], ["sensors.id"],
                                name=op.f("fk_readings_sensor_id_sensors"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("sensor_id", "ts", name=op.f("pk_readings")),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.execute("DROP TABLE readings")
