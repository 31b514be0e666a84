"""Every table on one MetaData, which Alembic reads.

Org-owned tables carry ``organization_id`` themselves so that every query is scoped the
same way (see ``telemetra.kit.scoping``), without joins through parents.

Every surrogate ``id`` is never given twice: ids appear in tokens, keys and URLs, and SQLite
without AUTOINCREMENT hands a deleted row's id (the highest) to the next row (PostgreSQL's
sequences never go back). Hence ``**NEVER_REUSE_IDS`` on each such table (migration 0005).
"""

import secrets

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
    true,
)

from telemetra.db.types import JSONType, ReadingTime, UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


def new_security_stamp() -> str:
    return secrets.token_hex(16)


def _timestamps() -> list[Column]:
    return [
        Column("created_at", UTCDateTime, nullable=False, server_default=func.now()),
        Column("updated_at", UTCDateTime, nullable=False, server_default=func.now()),
    ]


def _org_fk() -> Column:
    return Column("organization_id", Integer,
                  ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, index=True)


organizations = Table(
    "organizations", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("plan", String(50), nullable=False, server_default="free"),  # set on creation
    Column("max_devices", Integer, nullable=True),
    Column("max_readings_per_day", Integer, nullable=True),
    Column("retention_days", Integer, nullable=False, server_default="365"),
    Column("invalid_tags", JSONType, nullable=False),
    *_timestamps(),
    **NEVER_REUSE_IDS,
)

users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True),
    _org_fk(),
    Column("username", String(150), nullable=False, unique=True),
    Column("email", String(320), nullable=True, unique=True),
    Column("full_name", String(200), nullable=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(20), nullable=False, server_default="member"),
    Column("is_superadmin", Boolean, nullable=False, server_default=false()),
    Column("is_active", Boolean, nullable=False, server_default=true()),
    # Carried in every access token and compared on every request: a new stamp (password
    # change) ends every token issued before it, and a token never fits another user.
    Column("security_stamp", String(32), nullable=False, default=new_security_stamp),
    *_timestamps(),
    **NEVER_REUSE_IDS,
)

refresh_tokens = Table(
    "refresh_tokens", metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("family", String(64), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("spent_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False, server_default=func.now()),
    # Every request asks "has this family a token not revoked?": one seek here, however
    # many tokens the family or the user has (on family alone, or user_id, SQLite scanned
    # all of a user's tokens).
    Index("ix_refresh_tokens_family_revoked_at", "family", "revoked_at"),
    **NEVER_REUSE_IDS,
)

sites = Table(
    "sites", metadata,
    Column("id", Integer, primary_key=True),
    _org_fk(),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=True),
    Column("location", String(300), nullable=True),
    Column("latitude", Float, nullable=True),
    Column("longitude", Float, nullable=True),
    Column("timezone", String(64), nullable=True),
    *_timestamps(),
    UniqueConstraint("organization_id", "name"),
    **NEVER_REUSE_IDS,
)

devices = Table(
    "devices", metadata,
    Column("id", Integer, primary_key=True),
    _org_fk(),
    Column("site_id", Integer, ForeignKey("sites.id", ondelete="CASCADE"), nullable=True,
           index=True),
    Column("owner_id", Integer, ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("name", String(200), nullable=False),
    Column("device_type", String(100), nullable=True),
    Column("location", String(300), nullable=True),
    Column("firmware_version", String(100), nullable=True),
    Column("metadata", JSONType, nullable=True),
    Column("status", String(20), nullable=False, server_default="active"),
    Column("api_key_prefix", String(16), nullable=False, unique=True),
    Column("api_key_hash", String(64), nullable=False),
    Column("last_seen", UTCDateTime, nullable=True),
    Column("offline_after_seconds", Integer, nullable=False, server_default="300"),
    # last_seen + offline_after_seconds, kept so "online" is a plain indexed comparison.
    Column("online_until", UTCDateTime, nullable=True, index=True),
    # What the device status job last reported (telemetra.devices.status): a transition is
    # reported by whoever flips this, so once, whatever the number of processes.
    Column("reported_online", Boolean, nullable=False, server_default=false()),
    Index("ix_devices_reported_online_until", "reported_online", "online_until"),
    *_timestamps(),
    **NEVER_REUSE_IDS,
)

sensors = Table(
    "sensors", metadata,
    Column("id", Integer, primary_key=True),
    _org_fk(),
    Column("device_id", Integer, ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(100), nullable=False),
    Column("name", String(200), nullable=True),
    Column("type", String(50), nullable=False, server_default="other"),
    Column("unit", String(32), nullable=True),
    Column("status", String(20), nullable=False, server_default="active"),
    Column("valid_min", Float, nullable=True),
    Column("valid_max", Float, nullable=True),
    Column("last_value", Float, nullable=True),
    Column("last_ts", UTCDateTime, nullable=True),
    *_timestamps(),
    UniqueConstraint("device_id", "key"),
    **NEVER_REUSE_IDS,
)

groups = Table(
    "groups", metadata,
    Column("id", Integer, primary_key=True),
    _org_fk(),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=True),
    Column("color", String(32), nullable=True),
    *_timestamps(),
    UniqueConstraint("organization_id", "name"),
    **NEVER_REUSE_IDS,
)

group_members = Table(
    "group_members", metadata,
    Column("group_id", Integer, ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("device_id", Integer, ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True,
           index=True),
    Column("created_at", UTCDateTime, nullable=False, server_default=func.now()),
)

device_logs = Table(
    "device_logs", metadata,
    Column("id", Integer, primary_key=True),
    _org_fk(),
    Column("device_id", Integer, ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
    Column("ts", UTCDateTime, nullable=False),
    Column("level", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Index("ix_device_logs_device_ts", "device_id", "ts"),
    **NEVER_REUSE_IDS,
)

# The hot table. The primary key (sensor_id, ts) is also what makes a re-sent reading a
# duplicate. No surrogate id: a reading's public id encodes (sensor_id, ts). On PostgreSQL it
# is range-partitioned by month on ts (see migrations and ingest.partitions); ``flags``
# packs validity and review status (see readings.flags).
# On PostgreSQL the foreign key to sensors is not in the database: a trigger on sensors
# deletes their readings and the writer locks the sensors it writes for (migration 0004,
# telemetra.ingest.pgwrite). SQLite keeps it.
READINGS_SENSOR_FK = "fk_readings_sensor_id_sensors"
readings = Table(
    "readings", metadata,
    Column("sensor_id", Integer, ForeignKey("sensors.id", ondelete="CASCADE"), primary_key=True),
    Column("ts", ReadingTime, primary_key=True),
    Column("value", Float(precision=53), nullable=False),
    Column("flags", SmallInteger, nullable=False, server_default="0"),
    Column("tags", JSONType, nullable=True),
    Column("meta", JSONType, nullable=True),
    sqlite_with_rowid=False,  # clustered on (sensor_id, ts): range scans read adjacent pages
)

# Server-to-device commands. ``status``: queued -> delivered -> succeeded | failed; expired
# past ``expires_at``; cancelled by a user. Published over MQTT and polled over HTTP.
commands = Table(
    "commands", metadata,
    Column("id", Integer, primary_key=True),
    _org_fk(),
    Column("device_id", Integer, ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("params", JSONType, nullable=True),
    Column("status", String(20), nullable=False, server_default="queued"),
    Column("result", JSONType, nullable=True),
    Column("created_by", Integer, ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("expires_at", UTCDateTime, nullable=True, index=True),
    Column("delivered_at", UTCDateTime, nullable=True),
    Column("completed_at", UTCDateTime, nullable=True),
    *_timestamps(),
    Index("ix_commands_device_status", "device_id", "status"),
    **NEVER_REUSE_IDS,
)

# Data from elsewhere: ``http_pull`` fetches ``url`` every ``interval_seconds``;
# ``mqtt_topic`` maps a plain MQTT ``topic`` onto ``device_id``.
connectors = Table(
    "connectors", metadata,
    Column("id", Integer, primary_key=True),
    _org_fk(),
    Column("name", String(200), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("device_id", Integer, ForeignKey("devices.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("url", Text, nullable=True),
    Column("topic", String(300), nullable=True),
    Column("key", String(100), nullable=True),
    Column("format", String(20), nullable=False, server_default="auto"),
    Column("byte_order", String(10), nullable=False, server_default="little"),
    Column("interval_seconds", Integer, nullable=True),
    Column("max_age_seconds", Integer, nullable=True),
    Column("enabled", Boolean, nullable=False, server_default=true()),
    Column("last_run_at", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    *_timestamps(),
    # http_pull (telemetra.connectors.pull): headers as {name: sealed value} (kit.crypto),
    # never plain; the last successful pull's answer; the newest reading stored ({since});
    # when the next scheduled pull is due, and the lease of the process pulling it now.
    Column("headers", JSONType, nullable=True),
    Column("timeout_seconds", Float, nullable=True),
    Column("last_result", JSONType, nullable=True),
    Column("newest_reading_at", UTCDateTime, nullable=True),
    Column("next_run_at", UTCDateTime, nullable=True),
    Column("lease_until", UTCDateTime, nullable=True),
    UniqueConstraint("organization_id", "name"),
    **NEVER_REUSE_IDS,
)

# Events for the other processes sharing a SQLite file (telemetra.db.relay): written in the
# unit of work that made them, read by every process polling ``WHERE id > last``, pruned after
# minutes. AUTOINCREMENT: ids are handed out in commit order and never again, so a reader
# that finds one missing knows it missed events. PostgreSQL uses NOTIFY instead.
relayed_events = Table(
    "relayed_events", metadata,
    Column("id", Integer, primary_key=True),
    Column("origin", String(32), nullable=False),  # the writing process (it skips its own)
    Column("messages", Text, nullable=False),  # JSON list of kit.events.to_message
    Column("created_at", UTCDateTime, nullable=False, server_default=func.now()),
    **NEVER_REUSE_IDS,
)

# Alert rules (API.md, Alerts): at most one of device_id, site_id, group_id names the scope;
# none means the whole organization. ``webhook_secret`` is encrypted (telemetra.kit.crypto),
# never plain; ``webhook_enabled`` turns false when the receiver answers 410 Gone.
alert_rules = Table(
    "alert_rules", metadata,
    Column("id", Integer, primary_key=True),
    _org_fk(),
    Column("name", String(200), nullable=False),
    Column("key", String(100), nullable=True),  # none for ``offline``
    Column("condition", String(16), nullable=False),
    Column("threshold", Float(precision=53), nullable=True),
    Column("threshold_high", Float(precision=53), nullable=True),
    Column("for_seconds", Integer, nullable=False, server_default="0"),
    Column("severity", String(16), nullable=False, server_default="warning"),
    Column("device_id", Integer, ForeignKey("devices.id", ondelete="CASCADE"), nullable=True,
           index=True),
    Column("site_id", Integer, ForeignKey("sites.id", ondelete="CASCADE"), nullable=True),
    Column("group_id", Integer, ForeignKey("groups.id", ondelete="CASCADE"), nullable=True),
    Column("enabled", Boolean, nullable=False, server_default=true()),
    Column("webhook_url", Text, nullable=True),
    Column("webhook_secret", Text, nullable=True),
    Column("webhook_enabled", Boolean, nullable=False, server_default=true()),
    *_timestamps(),
    **NEVER_REUSE_IDS,
)

# Alerts. ``episode`` names what the alert is about within its rule: ``s<sensor_id>`` (a
# reading condition) or ``d<device_id>`` (``offline``). The partial unique index is what keeps
# one open alert per rule and episode, whatever the number of processes (migration 0007).
alerts = Table(
    "alerts", metadata,
    Column("id", Integer, primary_key=True),
    _org_fk(),
    Column("rule_id", Integer, ForeignKey("alert_rules.id", ondelete="CASCADE"),
           nullable=False),
    Column("episode", String(24), nullable=False),
    Column("device_id", Integer, ForeignKey("devices.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("sensor_id", Integer, ForeignKey("sensors.id", ondelete="CASCADE"), nullable=True),
    Column("key", String(100), nullable=True),
    Column("severity", String(16), nullable=False),
    Column("state", String(16), nullable=False, server_default="active"),
    Column("value", Float(precision=53), nullable=True),
    Column("threshold", Float(precision=53), nullable=True),
    Column("reading_ts", ReadingTime, nullable=True),  # the triggering reading's time
    Column("started_at", UTCDateTime, nullable=False),
    Column("acknowledged_at", UTCDateTime, nullable=True),
    Column("acknowledged_by", String(150), nullable=True),
    Column("resolved_at", UTCDateTime, nullable=True),
    Column("resolved_by", String(150), nullable=True),
    Index("ix_alerts_open_episode", "rule_id", "episode", unique=True,
          postgresql_where=Column("resolved_at").is_(None),
          sqlite_where=Column("resolved_at").is_(None)),
    Index("ix_alerts_organization_state", "organization_id", "state"),
    **NEVER_REUSE_IDS,
)

# A condition that holds but not yet for the rule's ``for_seconds``: the alert opens at
# ``due_at`` unless a reading clears it first (telemetra.alerts.evaluation). One row per rule
# and episode; whoever deletes the due row opens the alert, so it opens once.
alert_pending = Table(
    "alert_pending", metadata,
    Column("rule_id", Integer, ForeignKey("alert_rules.id", ondelete="CASCADE"),
           primary_key=True),
    Column("episode", String(24), primary_key=True),
    Column("organization_id", Integer, ForeignKey("organizations.id", ondelete="CASCADE"),
           nullable=False),
    Column("device_id", Integer, ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
    Column("sensor_id", Integer, ForeignKey("sensors.id", ondelete="CASCADE"), nullable=True),
    Column("value", Float(precision=53), nullable=True),
    Column("reading_ts", ReadingTime, nullable=True),
    Column("since", UTCDateTime, nullable=False),
    Column("due_at", UTCDateTime, nullable=False, index=True),
)

# The webhook outbox: written in the alert change's transaction, sent by the delivery job
# (telemetra.alerts.webhooks) under a lease (``lease_until``), so one process sends each.
webhook_deliveries = Table(
    "webhook_deliveries", metadata,
    Column("id", Integer, primary_key=True),
    _org_fk(),
    Column("alert_id", Integer, ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("rule_id", Integer, ForeignKey("alert_rules.id", ondelete="CASCADE"),
           nullable=False),
    Column("delivery_id", String(64), nullable=False, unique=True),
    Column("event", String(32), nullable=False),
    Column("url", Text, nullable=False),
    Column("alert", JSONType, nullable=False),  # the alert as it was at the change
    Column("state", String(16), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("lease_until", UTCDateTime, nullable=True),
    Column("delivered_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False, server_default=func.now()),
    Index("ix_webhook_deliveries_state_next", "state", "next_attempt_at"),
    **NEVER_REUSE_IDS,
)

# The processes sharing a SQLite file (telemetra.db.relay.sqlite): each one's heartbeat (unix
# seconds), its interests and how far it has applied relayed_events, so that a change that
# must be seen everywhere waits for every live process. PostgreSQL uses notifications.
relay_peers = Table(
    "relay_peers", metadata,
    Column("origin", String(32), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("interests", Text, nullable=False),  # JSON {event name: [organization ids]}
    Column("heard", Float, nullable=False),
)

# Committed readings for another process sharing a SQLite file (telemetra.db.relay.readings),
# one row per batch and target process; kept seconds. AUTOINCREMENT: ids in commit order.
relayed_readings = Table(
    "relayed_readings", metadata,
    Column("id", Integer, primary_key=True),
    Column("target", String(32), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", Float, nullable=False),  # unix seconds
    Index("ix_relayed_readings_target_id", "target", "id"),
    **NEVER_REUSE_IDS,
)

# Usage per organization and UTC day (telemetra.orgs.usage): each process counts in memory
# and adds its counts here every TELEMETRA_USAGE_FLUSH_SECONDS, never a write per reading.
# device_id 0 holds the organization's totals; a device's row, its rejected bodies.
usage_counters = Table(
    "usage_counters", metadata,
    Column("organization_id", Integer, ForeignKey("organizations.id", ondelete="CASCADE"),
           primary_key=True),
    Column("device_id", Integer, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("readings", BigInteger, nullable=False, server_default="0"),
    Column("rate_limited", BigInteger, nullable=False, server_default="0"),
    Column("quota_exceeded", BigInteger, nullable=False, server_default="0"),
)

# Dashboards (API.md, Dashboards): the organization's shared ones have no user_id; a user's own
# default dashboard (GET/PUT /dashboards/default) has theirs, one per user (the unique key: NULLs
# are distinct on both backends). ``layout`` is validated on the way in
# (telemetra.dashboards.schemas), so anything stored renders.
dashboards = Table(
    "dashboards", metadata,
    Column("id", Integer, primary_key=True),
    _org_fk(),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=True,
           unique=True),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=True),
    Column("layout", JSONType, nullable=False),
    *_timestamps(),
    **NEVER_REUSE_IDS,
)
