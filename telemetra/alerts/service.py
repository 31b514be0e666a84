"""Alerts: their public shape, users' acknowledge and resolve, and the opening and resolving
that evaluation does. Each change records ``AlertChanged`` and writes its webhook delivery
(the outbox) in the caller's unit of work. Never commits."""

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from telemetra.alerts.events import AlertChanged, EpisodeChanged
from telemetra.alerts.schemas import AlertState, Severity
from telemetra.db.tables import alert_rules, alerts, readings, webhook_deliveries
from telemetra.kit.errors import Conflict, NotFound
from telemetra.kit.events import record
from telemetra.kit.pagination import PageParams, paginate
from telemetra.kit.timeutil import utcnow
from telemetra.readings.ids import reading_id

RESOLVED_BY_CONDITION = "condition cleared"
WEBHOOK_EVENTS = {"fired": "alert.fired", "acknowledged": "alert.acknowledged",
                  "resolved": "alert.resolved"}

_latest_delivery = (select(func.max(webhook_deliveries.c.id))
                    .where(webhook_deliveries.c.alert_id == alerts.c.id)
                    .correlate(alerts).scalar_subquery())
_ALERT_QUERY = (
    select(alerts, alert_rules.c.name.label("rule_name"),
           webhook_deliveries.c.state.label("webhook_state"),
           webhook_deliveries.c.attempts.label("webhook_attempts"),
           webhook_deliveries.c.last_error.label("webhook_last_error"))
    .join(alert_rules, alert_rules.c.id == alerts.c.rule_id)
    .outerjoin(webhook_deliveries, webhook_deliveries.c.id == _latest_delivery))


def alert_out(row: RowMapping) -> dict:
    """An alert row of ``_ALERT_QUERY`` as the API shows it."""
    out = {name: row[name] for name in (
        "id", "rule_id", "rule_name", "severity", "state", "device_id", "sensor_id", "key",
        "value", "threshold", "started_at", "acknowledged_at", "acknowledged_by",
        "resolved_at", "resolved_by")}
    out["webhook"] = None if row["webhook_state"] is None else {
        "state": row["webhook_state"], "attempts": row["webhook_attempts"],
        "last_error": row["webhook_last_error"]}
    return out


def alert_json(alert: dict) -> dict[str, Any]:
    """``alert_out`` in plain JSON types (events and webhook bodies carry it)."""
    return {name: _iso(value) if isinstance(value, datetime) else value
            for name, value in alert.items()}


def _without_webhook(alert: dict) -> dict:
    # A delivery carries the alert as the change left it; its own state is not part of it.
    return {name: value for name, value in alert.items() if name != "webhook"}


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def _alert_row(conn: AsyncConnection, alert_id: int) -> RowMapping:
    return (await conn.execute(_ALERT_QUERY.where(alerts.c.id == alert_id))).mappings().one()


async def list_alerts(conn: AsyncConnection, organization_id: int, params: PageParams, *,
                      state: AlertState | None = None, severity: Severity | None = None,
                      device_id: int | None = None, rule_id: int | None = None
                      ) -> tuple[list, int]:
    """The organization's alerts, newest first."""
    query = (_ALERT_QUERY.where(alerts.c.organization_id == organization_id)
             .order_by(alerts.c.id.desc()))
    if state is not None:
        query = query.where(alerts.c.state == state.value)
    if severity is not None:
        query = query.where(alerts.c.severity == severity.value)
    if device_id is not None:
        query = query.where(alerts.c.device_id == device_id)
    if rule_id is not None:
        query = query.where(alerts.c.rule_id == rule_id)
    rows, total = await paginate(conn, query, params)
    return [alert_out(row) for row in rows], total


async def _get_row(conn: AsyncConnection, organization_id: int, alert_id: int) -> RowMapping:
    row = (await conn.execute(_ALERT_QUERY.where(
        alerts.c.id == alert_id, alerts.c.organization_id == organization_id))).mappings().first()
    if row is None:
        raise NotFound(f"alert {alert_id} not found")
    return row


async def get_alert(conn: AsyncConnection, organization_id: int, alert_id: int,
                    rule_out) -> dict:
    """One alert with its rule (``rule_out`` shapes it) and its triggering reading."""
    row = await _get_row(conn, organization_id, alert_id)
    rule = (await conn.execute(select(alert_rules).where(alert_rules.c.id == row["rule_id"])
                               )).mappings().one()
    reading = None
    if row["sensor_id"] is not None and row["reading_ts"] is not None:
        found = (await conn.execute(select(readings.c.sensor_id, readings.c.ts, readings.c.value)
                                    .where(readings.c.sensor_id == row["sensor_id"],
                                           readings.c.ts == row["reading_ts"]))).first()
        if found is not None:
            reading = {"id": reading_id(found.sensor_id, found.ts), "sensor_id": found.sensor_id,
                       "ts": found.ts, "value": found.value}
    return {**alert_out(row), "rule": rule_out(rule), "reading": reading}


async def acknowledge(conn: AsyncConnection, organization_id: int, alert_id: int, by: str,
                      retry: timedelta) -> dict:
    """An active alert becomes acknowledged (409 if it is not active)."""
    row = await _get_row(conn, organization_id, alert_id)
    changed = await conn.scalar(
        update(alerts).where(alerts.c.id == alert_id, alerts.c.state == AlertState.active.value)
        .values(state=AlertState.acknowledged.value, acknowledged_at=utcnow(),
                acknowledged_by=by).returning(alerts.c.id))
    if changed is None:
        raise Conflict(f"alert {alert_id} is {row['state']}; only an active alert can be "
                       "acknowledged")
    return await changed_alert(conn, alert_id, "acknowledged", retry)


async def resolve(conn: AsyncConnection, organization_id: int, alert_id: int, by: str,
                  retry: timedelta) -> dict:
    """An open alert (active or acknowledged) is resolved by a user (409 if it is resolved)."""
    await _get_row(conn, organization_id, alert_id)
    row = await _resolve_where(conn, alerts.c.id == alert_id, by)
    if row is None:
        raise Conflict(f"alert {alert_id} is resolved already")
    return await changed_alert(conn, alert_id, "resolved", retry, episode=row)


async def _resolve_where(conn: AsyncConnection, where, by: str):
    return (await conn.execute(
        update(alerts).where(where, alerts.c.resolved_at.is_(None))
        .values(state=AlertState.resolved.value, resolved_at=utcnow(), resolved_by=by)
        .returning(alerts.c.id, alerts.c.organization_id, alerts.c.rule_id, alerts.c.episode)
    )).first()


async def resolve_episode(conn: AsyncConnection, rule_id: int, episode: str,
                          retry: timedelta) -> dict | None:
    """The condition cleared: the rule's open alert for ``episode`` (if any) is resolved."""
    row = await _resolve_where(conn, (alerts.c.rule_id == rule_id) & (alerts.c.episode == episode),
                               RESOLVED_BY_CONDITION)
    if row is None:
        return None
    return await changed_alert(conn, row.id, "resolved", retry, episode=row)


async def open_alert(conn: AsyncConnection, rule: Any, episode: str, device_id: int,
                     sensor_id: int | None, value: float | None, reading_ts: datetime | None,
                     retry: timedelta) -> dict | None:
    """Open ``rule``'s alert for ``episode`` unless one is open already (the partial unique
    index decides, whatever the number of processes); the alert, or None."""
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    now = utcnow()
    alert_id = await conn.scalar(
        dialect_insert(alerts).values(
            organization_id=rule.organization_id, rule_id=rule.id, episode=episode,
            device_id=device_id, sensor_id=sensor_id, key=rule.key, severity=rule.severity,
            state=AlertState.active.value, value=value, threshold=rule.threshold,
            reading_ts=reading_ts, started_at=now)
        .on_conflict_do_nothing(index_elements=["rule_id", "episode"],
                                index_where=alerts.c.resolved_at.is_(None))
        .returning(alerts.c.id))
    record(conn, EpisodeChanged(rule.organization_id, rule.id, episode, "open"))
    if alert_id is None:
        return None
    return await changed_alert(conn, alert_id, "fired", retry)


async def changed_alert(conn: AsyncConnection, alert_id: int, change: str, retry: timedelta,
                        episode=None) -> dict:
    """Record ``AlertChanged`` and write the webhook delivery of the change, if the rule has
    a webhook; the alert as the API shows it."""
    row = await _alert_row(conn, alert_id)
    if episode is not None:
        record(conn, EpisodeChanged(episode.organization_id, episode.rule_id, episode.episode,
                                    "clear"))
    hook = (await conn.execute(select(alert_rules.c.webhook_url, alert_rules.c.webhook_enabled)
                               .where(alert_rules.c.id == row["rule_id"]))).first()
    if hook is not None and hook.webhook_url and hook.webhook_enabled:
        now = utcnow()
        await conn.execute(webhook_deliveries.insert().values(
            organization_id=row["organization_id"], alert_id=alert_id, rule_id=row["rule_id"],
            delivery_id=str(uuid.uuid4()), event=WEBHOOK_EVENTS[change], url=hook.webhook_url,
            alert=_without_webhook(alert_json(alert_out(row))), next_attempt_at=now,
            expires_at=now + retry))
        row = await _alert_row(conn, alert_id)
    alert = alert_out(row)
    record(conn, AlertChanged(change, row["organization_id"], row["device_id"],
                              alert_json(alert)))
    return alert


async def count_active(conn: AsyncConnection, organization_id: int) -> int:
    """Alerts that are active (fired, neither acknowledged nor resolved)."""
    return int(await conn.scalar(select(func.count()).select_from(alerts).where(
        alerts.c.organization_id == organization_id,
        alerts.c.state == AlertState.active.value)) or 0)
