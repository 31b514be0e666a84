"""Retention: readings older than their organization's ``retention_days`` are removed.

On PostgreSQL, monthly partitions that end before the oldest cutoff of any organization are
dropped whole; what remains past a shorter retention is deleted row-wise. Deletes go in
bounded chunks, each its own transaction, so the job never holds long locks.
"""

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from telemetra.db.tables import organizations, readings, sensors
from telemetra.ingest.partitions import Partitions
from telemetra.kit.db import write_transaction
from telemetra.orgs.plans import Plans
from telemetra.readings.review import refresh_latest

log = logging.getLogger("telemetra.retention")

CHUNK = 10_000


async def _delete_older(engine: AsyncEngine, sensor_id: int, cutoff: datetime) -> int:
    deleted = 0
    while True:
        async with write_transaction(engine) as conn:
            oldest = (select(readings.c.ts)
                      .where(readings.c.sensor_id == sensor_id, readings.c.ts < cutoff)
                      .order_by(readings.c.ts).limit(CHUNK))
            result = await conn.execute(delete(readings).where(
                readings.c.sensor_id == sensor_id, readings.c.ts.in_(oldest)))
            if result.rowcount:
                await refresh_latest(conn, [sensor_id])
        deleted += result.rowcount
        if result.rowcount < CHUNK:
            return deleted


def _capped(days: int, plan: str, plans: Plans | None) -> int:
    known = plans.table.get(plan) if plans is not None else None
    if known is None or known.retention_days is None:
        return days
    return min(days, known.retention_days)


async def apply_retention(engine: AsyncEngine, partitions: Partitions, now: datetime,
                          plans: Plans | None = None) -> dict:
    """One pass; returns what it removed. An organization keeps readings its
    ``retention_days``, at most its plan's (``plans``)."""
    async with engine.connect() as conn:
        rows = (await conn.execute(select(organizations.c.id, organizations.c.retention_days,
                                          organizations.c.plan))).all()
    orgs = [(org, _capped(days, plan, plans)) for org, days, plan in rows]
    if not orgs:
        return {"partitions_dropped": [], "rows_deleted": 0}
    longest = max(days for _, days in orgs)
    dropped = await partitions.drop_before(now - timedelta(days=longest))
    rows = 0
    for organization_id, days in orgs:
        cutoff = now - timedelta(days=days)
        async with engine.connect() as conn:
            sensor_ids = (await conn.scalars(select(sensors.c.id).where(
                sensors.c.organization_id == organization_id))).all()
        for sensor_id in sensor_ids:
            rows += await _delete_older(engine, sensor_id, cutoff)
    if dropped or rows:
        log.info("retention: dropped partitions %s, deleted %d rows", dropped, rows)
    return {"partitions_dropped": dropped, "rows_deleted": rows}
