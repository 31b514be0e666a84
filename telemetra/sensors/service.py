"""Sensors; unique per (device, key). Readings for an unknown key create theirs."""

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from telemetra.db.tables import devices, sensors
from telemetra.kit.errors import Conflict, Invalid
from telemetra.kit.pagination import PageParams, paginate
from telemetra.kit.scoping import ensure_scoped, get_scoped, scoped
from telemetra.kit.timeutil import utcnow
from telemetra.sensors.schemas import SensorCreate, SensorStatus, SensorUpdate


async def list_sensors(conn: AsyncConnection, organization_id: int, params: PageParams, *,
                       device_id: int | None = None, site_id: int | None = None,
                       type: str | None = None, status: SensorStatus | None = None,
                       key: str | None = None) -> tuple[list, int]:
    query = scoped(sensors, organization_id).order_by(sensors.c.id)
    if device_id is not None:
        query = query.where(sensors.c.device_id == device_id)
    if site_id is not None:
        query = query.where(sensors.c.device_id.in_(
            select(devices.c.id).where(devices.c.site_id == site_id)))
    if type is not None:
        query = query.where(sensors.c.type == type)
    if status is not None:
        query = query.where(sensors.c.status == status.value)
    if key is not None:
        query = query.where(sensors.c.key == key)
    return await paginate(conn, query, params)


async def get_sensor(conn: AsyncConnection, organization_id: int, sensor_id: int) -> RowMapping:
    return await get_scoped(conn, sensors, sensor_id, organization_id, "sensor")


async def create_sensor(conn: AsyncConnection, organization_id: int,
                        body: SensorCreate) -> RowMapping:
    await ensure_scoped(conn, devices, body.device_id, organization_id, "device_id")
    taken = await conn.scalar(select(sensors.c.id).where(sensors.c.device_id == body.device_id,
                                                         sensors.c.key == body.key))
    if taken is not None:
        raise Conflict(f"device {body.device_id} already has a sensor with key {body.key!r}")
    now = utcnow()
    sensor_id = await conn.scalar(insert(sensors).values(
        **body.model_dump(), organization_id=organization_id, created_at=now, updated_at=now,
    ).returning(sensors.c.id))
    return await get_sensor(conn, organization_id, sensor_id)


async def update_sensor(conn: AsyncConnection, organization_id: int, sensor_id: int,
                        body: SensorUpdate) -> RowMapping:
    sensor = await get_sensor(conn, organization_id, sensor_id)
    values = body.model_dump(exclude_unset=True)
    low = values.get("valid_min", sensor["valid_min"])
    high = values.get("valid_max", sensor["valid_max"])
    if low is not None and high is not None and low > high:
        raise Invalid("valid_min must not be greater than valid_max", loc=["body", "valid_min"])
    if values:
        await conn.execute(update(sensors).where(sensors.c.id == sensor_id)
                           .values(**values, updated_at=utcnow()))
    return await get_sensor(conn, organization_id, sensor_id)


async def delete_sensor(conn: AsyncConnection, organization_id: int, sensor_id: int) -> None:
    await get_sensor(conn, organization_id, sensor_id)
    await conn.execute(delete(sensors).where(sensors.c.id == sensor_id))
