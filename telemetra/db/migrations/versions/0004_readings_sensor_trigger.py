"""readings on PostgreSQL: a trigger on sensors instead of a foreign key

Checked for every row written, the foreign key halved the rate at which batches are stored.
The writer locks each batch's sensors instead (telemetra.ingest.pgwrite), and deleting
sensors, however they go (a sensor, its device, its organization), deletes their readings
here. SQLite keeps the foreign key.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE readings DROP CONSTRAINT fk_readings_sensor_id_sensors")
    op.execute("""
        CREATE FUNCTION telemetra_delete_sensor_readings() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM readings WHERE sensor_id IN (SELECT id FROM gone);
            RETURN NULL;
        END $$
    """)
    op.execute("""
        CREATE TRIGGER sensors_delete_readings AFTER DELETE ON sensors
        REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
        EXECUTE FUNCTION telemetra_delete_sensor_readings()
    """)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER sensors_delete_readings ON sensors")
    op.execute("DROP FUNCTION telemetra_delete_sensor_readings()")
    op.execute("DELETE FROM readings WHERE sensor_id NOT IN (SELECT id FROM sensors)")
    op.execute("ALTER TABLE readings ADD CONSTRAINT fk_readings_sensor_id_sensors "
               "FOREIGN KEY (sensor_id) REFERENCES sensors (id) ON DELETE CASCADE")
