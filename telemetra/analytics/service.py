from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from telemetra.alerts.service import count_active
from telemetra.db.tables import devices, readings, sensors
from telemetra.kit.timeutil import utcnow
from telemetra.readings.aggregate import aggregate
from telemetra.readings.buckets import Interval
from telemetra.readings.query import ReadingFilter


async def summary(conn: AsyncConnection, organization_id: int) -> dict:
    now = utcnow()
    count = select(func.count()).select_from(devices).where(
        devices.c.organization_id == organization_id)
    org_sensors = select(sensors.c.id).where(sensors.c.organization_id == organization_id)
    return {
        "devices_total": await conn.scalar(count),
        "devices_online": await conn.scalar(count.where(devices.c.online_until > now)),
        "sensors": await conn.scalar(select(func.count()).select_from(sensors).where(
            sensors.c.organization_id == organization_id)),
        "readings_today": await conn.scalar(select(func.count()).select_from(readings).where(
            readings.c.sensor_id.in_(org_sensors),
            readings.c.ts >= now.replace(hour=0, minute=0, second=0, microsecond=0))),
        "active_alerts": await count_active(conn, organization_id),
    }


async def trend(conn: AsyncConnection, where: ReadingFilter, interval: Interval, fn: str,
                zone: ZoneInfo) -> list[dict]:
    """One series for a key across every device the filters select."""
    functions = [fn] if fn == "count" else [fn, "count"]
    rows = await aggregate(conn, where, interval, functions, zone, per_sensor=False)
    return [{"bucket": row["bucket"], "value": row[fn], "count": row["count"]} for row in rows]
