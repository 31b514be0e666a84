"""Changing stored readings: review (validate, archive), edits and deletes. Admins only.

After anything that removes or changes readings, the affected sensors' latest values are
worked out again, so queries, ``latest`` and site statistics agree.
"""

from collections.abc import Iterable

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from telemetra.db.tables import devices, readings, sensors, sites
from telemetra.kit.errors import Conflict, Invalid, NotFound
from telemetra.kit.scoping import get_scoped
from telemetra.orgs import service as orgs
from telemetra.readings import flags as F
from telemetra.readings.flags import ReviewStatus
from telemetra.readings.ids import parse_reading_id
from telemetra.readings.query import ReadingFilter, get_reading


async def refresh_latest(conn: AsyncConnection, sensor_ids: Iterable[int]) -> None:
    """Recompute ``last_value``/``last_ts`` of these sensors from their valid readings."""
    for sensor_id in set(sensor_ids):
        row = (await conn.execute(
            select(readings.c.ts, readings.c.value)
            .where(readings.c.sensor_id == sensor_id, F.valid_clause(readings.c.flags))
            .order_by(readings.c.ts.desc()).limit(1))).first()
        await conn.execute(update(sensors).where(sensors.c.id == sensor_id).values(
            last_ts=row.ts if row else None, last_value=row.value if row else None))


async def _row(conn: AsyncConnection, organization_id: int, reading: str):
    sensor_id, ts = parse_reading_id(reading)
    found = (await conn.execute(
        select(readings.c.flags, readings.c.value, readings.c.tags, sensors.c.valid_min,
               sensors.c.valid_max, sensors.c.organization_id)
        .join_from(readings, sensors, sensors.c.id == readings.c.sensor_id)
        .where(readings.c.sensor_id == sensor_id, readings.c.ts == ts,
               sensors.c.organization_id == organization_id))).first()
    if found is None:
        raise NotFound(f"reading {reading} not found")
    return sensor_id, ts, found


def _where_key(sensor_id, ts):
    return (readings.c.sensor_id == sensor_id) & (readings.c.ts == ts)


async def set_status(conn: AsyncConnection, organization_id: int, reading: str,
                     status: ReviewStatus) -> dict:
    """validate: only a pending reading (409 otherwise); archive: anything not archived."""
    sensor_id, ts, row = await _row(conn, organization_id, reading)
    current = F.status_of(row.flags)
    if status is ReviewStatus.validated and current is not ReviewStatus.pending:
        raise Conflict(f"the reading is {current.value}; only a pending reading can be "
                       "validated")
    if status is ReviewStatus.archived and current is ReviewStatus.archived:
        raise Conflict("the reading is archived already")
    await conn.execute(update(readings).where(_where_key(sensor_id, ts))
                       .values(flags=F.with_status(row.flags, status)))
    return await get_reading(conn, organization_id, reading, include_invalid=True)


async def update_reading(conn: AsyncConnection, organization_id: int, reading: str,
                         changes: dict) -> dict:
    """Change value, status and/or tags; validity is decided again for the new value/tags."""
    sensor_id, ts, row = await _row(conn, organization_id, reading)
    value = changes.get("value", row.value)
    tags = changes["tags"] if "tags" in changes else row.tags
    if value is None:
        raise Invalid("value cannot be null", loc=["body", "value"])
    valid = F.is_valid_reading(value, tags, row.valid_min, row.valid_max,
                               await orgs.invalid_tags(conn, organization_id))
    status = changes.get("status") or F.status_of(row.flags)
    await conn.execute(update(readings).where(_where_key(sensor_id, ts)).values(
        value=value, tags=tags or None, flags=F.pack(valid, ReviewStatus(status))))
    await refresh_latest(conn, [sensor_id])
    return await get_reading(conn, organization_id, reading, include_invalid=True)


async def delete_reading(conn: AsyncConnection, organization_id: int, reading: str) -> None:
    sensor_id, ts, _ = await _row(conn, organization_id, reading)
    await conn.execute(delete(readings).where(_where_key(sensor_id, ts)))
    await refresh_latest(conn, [sensor_id])


async def _sensor_ids(conn: AsyncConnection, where: ReadingFilter) -> list[int]:
    return list((await conn.scalars(where.sensor_ids(), where.params)).all())


async def _require_scope(conn: AsyncConnection, where: ReadingFilter) -> None:
    """Bulk changes name a device or sensor of the organization (else 404) and a time range."""
    if where.device_id is None and where.sensor_id is None:
        raise Invalid("name a device_id or a sensor_id", loc=["query", "device_id"])
    if where.start is None and where.end is None:
        raise Invalid("name a time range: start and/or end", loc=["query", "start"])
    where.check_range()
    if where.device_id is not None:
        await get_scoped(conn, devices, where.device_id, where.organization_id, "device")
    if where.sensor_id is not None:
        await get_scoped(conn, sensors, where.sensor_id, where.organization_id, "sensor")
    if where.site_id is not None:
        await get_scoped(conn, sites, where.site_id, where.organization_id, "site")


async def delete_readings(conn: AsyncConnection, where: ReadingFilter) -> int:
    """Delete what the filters select (a device or sensor, and a time range)."""
    await _require_scope(conn, where)
    ids = await _sensor_ids(conn, where)
    if not ids:
        return 0
    result = await conn.execute(delete(readings).where(readings.c.sensor_id.in_(ids),
                                                       *where.reading_clauses()), where.params)
    await refresh_latest(conn, ids)
    return result.rowcount


async def review(conn: AsyncConnection, where: ReadingFilter, status: ReviewStatus) -> int:
    """Bulk review: validate the pending readings, or archive those not archived yet."""
    await _require_scope(conn, where)
    ids = await _sensor_ids(conn, where)
    if not ids:
        return 0
    if status is ReviewStatus.validated:
        eligible = F.status_clause(readings.c.flags, ReviewStatus.pending)
    else:
        eligible = ~F.status_clause(readings.c.flags, ReviewStatus.archived)
    result = await conn.execute(
        update(readings).where(readings.c.sensor_id.in_(ids), *where.reading_clauses(), eligible)
        .values(flags=F.set_status_value(readings.c.flags, status)), where.params)
    return result.rowcount


