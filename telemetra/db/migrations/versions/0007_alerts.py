"""alerts: alert rules, alerts (one open per rule and episode), pending conditions, the
webhook outbox, and devices.reported_online for the device status job

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

import telemetra.db.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_dt = telemetra.db.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch_op:
        batch_op.add_column(sa.Column("reported_online", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.create_index("ix_devices_reported_online_until",
                              ["reported_online", "online_until"])

    op.create_table(
        "alert_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=True),
        sa.Column("condition", sa.String(length=16), nullable=False),
        sa.Column("threshold", sa.Float(precision=53), nullable=True),
        sa.Column("threshold_high", sa.Float(precision=53), nullable=True),
        sa.Column("for_seconds", sa.Integer(), server_default="0", nullable=False),
        sa.Column("severity", sa.String(length=16), server_default="warning", nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("webhook_secret", sa.Text(), nullable=True),
        sa.Column("webhook_enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_at", _dt, server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", _dt, server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_alert_rules_organization_id_organizations"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"],
                                name=op.f("fk_alert_rules_device_id_devices"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"],
                                name=op.f("fk_alert_rules_site_id_sites"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"],
                                name=op.f("fk_alert_rules_group_id_groups"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_rules")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_alert_rules_organization_id"), "alert_rules", ["organization_id"])
    op.create_index(op.f("ix_alert_rules_device_id"), "alert_rules", ["device_id"])

    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("episode", sa.String(length=24), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("sensor_id", sa.Integer(), nullable=True),
        sa.Column("key", sa.String(length=100), nullable=True),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), server_default="active", nullable=False),
        sa.Column("value", sa.Float(precision=53), nullable=True),
        sa.Column("threshold", sa.Float(precision=53), nullable=True),
        sa.Column("reading_ts", telemetra.db.types.ReadingTime(timezone=True), nullable=True),
        sa.Column("started_at", _dt, nullable=False),
        sa.Column("acknowledged_at", _dt, nullable=True),
        sa.Column("acknowledged_by", sa.String(length=150), nullable=True),
        sa.Column("resolved_at", _dt, nullable=True),
        sa.Column("resolved_by", sa.String(length=150), nullable=True),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_alerts_organization_id_organizations"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["rule_id"], ["alert_rules.id"],
                                name=op.f("fk_alerts_rule_id_alert_rules"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"],
                                name=op.f("fk_alerts_device_id_devices"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["sensor_id"], ["sensors.id"],
                                name=op.f("fk_alerts_sensor_id_sensors"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_alerts_organization_id"), "alerts", ["organization_id"])
    op.create_index(op.f("ix_alerts_device_id"), "alerts", ["device_id"])
    op.create_index("ix_alerts_organization_state", "alerts", ["organization_id", "state"])
    # One open alert per rule and episode: the database decides, whatever the processes.
    op.create_index("ix_alerts_open_episode", "alerts", ["rule_id", "episode"], unique=True,
                    postgresql_where=sa.text("resolved_at IS NULL"),
                    sqlite_where=sa.text("resolved_at IS NULL"))

    op.create_table(
        "alert_pending",
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("episode", sa.String(length=24), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("sensor_id", sa.Integer(), nullable=True),
        sa.Column("value", sa.Float(precision=53), nullable=True),
        sa.Column("reading_ts", telemetra.db.types.ReadingTime(timezone=True), nullable=True),
        sa.Column("since", _dt, nullable=False),
        sa.Column("due_at", _dt, nullable=False),
        sa.ForeignKeyConstraint(["rule_id"], ["alert_rules.id"],
                                name=op.f("fk_alert_pending_rule_id_alert_rules"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_alert_pending_organization_id_organizations"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"],
                                name=op.f("fk_alert_pending_device_id_devices"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["sensor_id"], ["sensors.id"],
                                name=op.f("fk_alert_pending_sensor_id_sensors"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("rule_id", "episode", name=op.f("pk_alert_pending")),
    )
    op.create_index(op.f("ix_alert_pending_due_at"), "alert_pending", ["due_at"])

    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("alert", telemetra.db.types.JSONType, nullable=False),
        sa.Column("state", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", _dt, nullable=False),
        sa.Column("expires_at", _dt, nullable=False),
        sa.Column("lease_until", _dt, nullable=True),
        sa.Column("delivered_at", _dt, nullable=True),
        sa.Column("created_at", _dt, server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_webhook_deliveries_organization_id_organizations"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"],
                                name=op.f("fk_webhook_deliveries_alert_id_alerts"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["rule_id"], ["alert_rules.id"],
                                name=op.f("fk_webhook_deliveries_rule_id_alert_rules"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("delivery_id", name=op.f("uq_webhook_deliveries_delivery_id")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_webhook_deliveries_organization_id"), "webhook_deliveries",
                    ["organization_id"])
    op.create_index(op.f("ix_webhook_deliveries_alert_id"), "webhook_deliveries", ["alert_id"])
    op.create_index("ix_webhook_deliveries_state_next", "webhook_deliveries",
                    ["state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("alert_pending")
    op.drop_table("alerts")
    op.drop_table("alert_rules")
    with op.batch_alter_table("devices") as batch_op:
        batch_op.drop_index("ix_devices_reported_online_until")
        batch_op.drop_column("reported_online")
