"""Sensors; unique per (device, key). Readings for an unknown key create theirs, within
``SensorCaps``: so many a request, so many a device (issue 9: one body of 100,000 new keys
stalled SQLite for 20 s and was a 503 on PostgreSQL every time)."""

from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Row, RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from telemetra.db.tables import devices, sensors
from telemetra.kit.errors import Conflict, Invalid, QuotaExceeded
from telemetra.kit.events import record
from telemetra.kit.pagination import PageParams, paginate
from telemetra.kit.schemas import as_update
from telemetra.kit.scoping import ensure_scoped, get_scoped, scoped
from telemetra.kit.timeutil import utcnow
from telemetra.sensors import types as sensortypes
from telemetra.sensors.events import SensorChanged
from telemetra.sensors.schemas import SensorCreate, SensorReplace, SensorStatus, SensorUpdate

# PostgreSQL advisory lock class (with the device id) serialising the creation of a device's
# sensors, so that two requests cannot both take its last places.
_CREATE_LOCK = 7003


@dataclass(frozen=True, slots=True)
class SensorCaps:
    """Settings ``TELEMETRA_MAX_NEW_SENSORS_PER_REQUEST``, ``TELEMETRA_MAX_SENSORS_PER_DEVICE``."""

    per_request: int = 100
    per_device: int = 1000

    @property
    def request_full(self) -> str:
        return f"too many new sensors in one request (at most {self.per_request})"

    @property
    def device_full(self) -> str:
        return f"the device has the most sensors it may have ({self.per_device})"


async def count_device_sensors(conn: AsyncConnection, device_id: int) -> int:
    return await conn.scalar(select(func.count()).select_from(sensors)
                             .where(sensors.c.device_id == device_id))


async def places_for(conn: AsyncConnection, device_id: int, new_keys: list[str],
                     caps: SensorCaps) -> tuple[list[str], dict[str, str]]:
    """Which of ``new_keys`` (in order) may become sensors of the device, and the others with
    the reason. Call it in the write transaction that creates them: it holds the device's place
    count until that transaction ends."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:lock, :device)"),
                           {"lock": _CREATE_LOCK, "device": device_id})
    room = max(0, caps.per_device - await count_device_sensors(conn, device_id))
    allowed = min(caps.per_request, room)
    refused = {key: caps.device_full if position >= room else caps.request_full
               for position, key in enumerate(new_keys[allowed:], allowed)}
    return new_keys[:allowed], refused


async def create_for_readings(conn: AsyncConnection, organization_id: int, device_id: int,
                              units: dict[str, str | None], caps: SensorCaps
                              ) -> tuple[list[Row], dict[str, str]]:
    """Create the sensors that readings of unknown keys need: ``units`` maps each key to the
    unit its reading named (or None), in body order. Type and unit are guessed from the key
    (``sensors.types``; a unit the reading named wins), within ``caps``. Call it in a write
    transaction.

    Returns the device's sensors of those keys (``id, key, valid_min, valid_max``; made now, or
    by a concurrent writer a moment before), and the keys refused, with the reason."""
    new, refused = await places_for(conn, device_id, list(units), caps)
    if not new:
        return [], refused
    now = utcnow()
    values = []
    for key in new:
        sensor_type, unit = sensortypes.guess(key)
        values.append({"organization_id": organization_id, "device_id": device_id,
                       "key": key, "type": sensor_type, "unit": units[key] or unit,
                       "status": "active", "created_at": now, "updated_at": now})
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    await conn.execute(dialect_insert(sensors).values(values)
                       .on_conflict_do_nothing(index_elements=["device_id", "key"]))
    rows = (await conn.execute(
        select(sensors.c.id, sensors.c.key, sensors.c.valid_min, sensors.c.valid_max)
        .where(sensors.c.device_id == device_id, sensors.c.key.in_(new)))).all()
    return rows, refused


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


async def create_sensor(conn: AsyncConnection, organization_id: int, body: SensorCreate,
                        caps: SensorCaps | None = None) -> RowMapping:
    await ensure_scoped(conn, devices, body.device_id, organization_id, "device_id")
    taken = await conn.scalar(select(sensors.c.id).where(sensors.c.device_id == body.device_id,
                                                         sensors.c.key == body.key))
    if taken is not None:
        raise Conflict(f"device {body.device_id} already has a sensor with key {body.key!r}")
    if caps is not None and not (await places_for(conn, body.device_id, [body.key], caps))[0]:
        raise QuotaExceeded(f"device {body.device_id} has the most sensors it may have "
                            f"({caps.per_device})")
    now = utcnow()
    sensor_id = await conn.scalar(insert(sensors).values(
        **body.model_dump(), organization_id=organization_id, created_at=now, updated_at=now,
    ).returning(sensors.c.id))
    record(conn, SensorChanged(sensor_id, body.device_id, organization_id))
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
        # The ingestion path caches valid ranges and statuses: stale once this commits.
        record(conn, SensorChanged(sensor_id, sensor["device_id"], organization_id))
    return await get_sensor(conn, organization_id, sensor_id)


async def replace_sensor(conn: AsyncConnection, organization_id: int, sensor_id: int,
                         body: SensorReplace) -> RowMapping:
    """PUT: the sensor as ``body`` has it, fields left out at their defaults. Its device and
    key say which sensor it is and cannot change (its readings are theirs): 422 if they
    differ."""
    sensor = await get_sensor(conn, organization_id, sensor_id)
    for name in ("device_id", "key"):
        if getattr(body, name) != sensor[name]:
            raise Invalid(f"{name}: a sensor's {name} cannot change (this one's is "
                          f"{sensor[name]!r}); create another sensor instead",
                          loc=["body", name])
    return await update_sensor(conn, organization_id, sensor_id, as_update(body, SensorUpdate))


async def delete_sensor(conn: AsyncConnection, organization_id: int, sensor_id: int) -> None:
    sensor = await get_sensor(conn, organization_id, sensor_id)
    await conn.execute(delete(sensors).where(sensors.c.id == sensor_id))
    record(conn, SensorChanged(sensor_id, sensor["device_id"], organization_id, deleted=True))
