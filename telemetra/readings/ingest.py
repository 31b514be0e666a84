"""The ingestion path shared by HTTP, MQTT, connectors and import.

decode -> normalise -> resolve sensors (cached; unknown keys create sensors) -> validity
(valid range, the organization's invalid tags) -> the group-commit writer -> the answer.
"""

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from telemetra.db.tables import devices, sensors
from telemetra.kit.db import open_transaction
from telemetra.kit.timeutil import utcnow
from telemetra.orgs import service as orgs
from telemetra.readings import sensortypes
from telemetra.readings.batches import Row
from telemetra.readings.decode import Reading, Rejection, decode_body
from telemetra.readings.flags import is_valid_reading, pack
from telemetra.readings.writer import Writer

CACHE_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class SensorInfo:
    id: int
    valid_min: float | None
    valid_max: float | None


@dataclass(frozen=True, slots=True)
class Target:
    """The device readings are stored for."""

    device_id: int
    organization_id: int


async def find_target(engine: AsyncEngine, organization_id: int | None,
                      device_id: int) -> Target | None:
    """The device readings would be stored for, if it exists (in that organization, when one
    is named; any organization for the command line)."""
    query = select(devices.c.organization_id).where(devices.c.id == device_id)
    if organization_id is not None:
        query = query.where(devices.c.organization_id == organization_id)
    async with engine.connect() as conn:
        owner = await conn.scalar(query)
    return Target(device_id, owner) if owner is not None else None


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """A device as the ingestion path needs it (cached: MQTT looks it up per message)."""

    target: Target
    status: str


DEVICE_CACHE_SECONDS = 10.0


class _TTLCache:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._data: dict = {}

    def get(self, key):
        hit = self._data.get(key)
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def put(self, key, value) -> None:
        self._data[key] = (value, time.monotonic() + self.seconds)

    def drop_where(self, predicate) -> None:
        for key in [k for k in self._data if predicate(k)]:
            del self._data[key]


class Ingestor:
    """Everything the ingestion path needs, built once in the lifespan."""

    def __init__(self, engine: AsyncEngine, writer: Writer) -> None:
        self.engine = engine
        self.writer = writer
        self._sensors = _TTLCache(CACHE_SECONDS)  # (device_id, key) -> SensorInfo
        self._invalid_tags = _TTLCache(CACHE_SECONDS)  # organization_id -> frozenset
        self._devices = _TTLCache(DEVICE_CACHE_SECONDS)  # device_id -> DeviceInfo

    def forget_device(self, device_id: int) -> None:
        """Drop what is cached about a device (it, or its sensors, changed)."""
        self._sensors.drop_where(lambda key: key[0] == device_id)
        self._devices.drop_where(lambda key: key == device_id)

    async def device(self, device_id: int) -> DeviceInfo | None:
        """The device with this id in any organization (the broker vouched for it), or None."""
        info = self._devices.get(device_id)
        if info is None:
            query = (select(devices.c.organization_id, devices.c.status)
                     .where(devices.c.id == device_id))
            async with self.engine.connect() as conn:
                row = (await conn.execute(query)).first()
            if row is None:
                return None
            info = DeviceInfo(Target(device_id, row.organization_id), row.status)
            self._devices.put(device_id, info)
        return info

    def forget_organization(self, organization_id: int) -> None:
        self._invalid_tags.drop_where(lambda key: key == organization_id)

    async def ingest(self, target: Target, body: Any, *, value_key: str = "value",
                     byte_order: str = "little") -> dict:
        """Decode, store durably, and answer ``{accepted, duplicates, rejected}``."""
        readings, rejected = decode_body(body, value_key=value_key, byte_order=byte_order)
        return await self.store(target, readings, rejected)

    async def store(self, target: Target, readings: list[Reading],
                    rejected: list[Rejection] | None = None, *,
                    now: datetime | None = None) -> dict:
        rejected = list(rejected or [])
        if not readings:
            return {"accepted": 0, "duplicates": 0,
                    "rejected": [r.as_dict() for r in rejected]}
        rows = await self.rows(target, readings, now or utcnow())
        inserted = await self.writer.write(rows)
        return {"accepted": inserted, "duplicates": len(rows) - inserted,
                "rejected": [r.as_dict() for r in rejected]}

    async def rows(self, target: Target, readings: list[Reading], now: datetime) -> list[Row]:
        """The rows to write for readings of one device: sensors resolved (created when
        unknown), validity decided, "now" for readings without a time."""
        if not readings:
            return []
        sensors_by_key = await self._resolve(target, readings)
        invalid_tags = await self._organization_invalid_tags(target.organization_id)
        rows: list[Row] = []
        for reading in readings:
            sensor = sensors_by_key[reading.key]
            valid = is_valid_reading(reading.value, reading.tags, sensor.valid_min,
                                     sensor.valid_max, invalid_tags)
            rows.append((sensor.id, reading.ts or now, reading.value, pack(valid), reading.tags,
                         reading.meta))
        return rows

    async def _organization_invalid_tags(self, organization_id: int) -> frozenset[str]:
        tags = self._invalid_tags.get(organization_id)
        if tags is None:
            async with self.engine.connect() as conn:
                tags = await orgs.invalid_tags(conn, organization_id)
            self._invalid_tags.put(organization_id, tags)
        return tags

    async def _resolve(self, target: Target, readings: list[Reading]) -> dict[str, SensorInfo]:
        found: dict[str, SensorInfo] = {}
        missing: dict[str, Reading] = {}
        for reading in readings:
            if reading.key in found or reading.key in missing:
                continue
            info = self._sensors.get((target.device_id, reading.key))
            if info is None:
                missing[reading.key] = reading
            else:
                found[reading.key] = info
        if missing:
            found.update(await self._load_or_create(target, missing))
        return found

    async def _load_or_create(self, target: Target,
                              wanted: dict[str, Reading]) -> dict[str, SensorInfo]:
        columns = (sensors.c.id, sensors.c.key, sensors.c.valid_min, sensors.c.valid_max)
        query = select(*columns).where(and_(sensors.c.device_id == target.device_id,
                                            sensors.c.key.in_(list(wanted))))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        known = {row.key: SensorInfo(row.id, row.valid_min, row.valid_max) for row in rows}
        new = [key for key in wanted if key not in known]
        if new:
            conn = await open_transaction(self.engine, write=True)
            try:
                dialect_insert = (pg_insert if self.engine.dialect.name == "postgresql"
                                  else sqlite_insert)
                now = utcnow()
                values = []
                for key in new:
                    sensor_type, unit = sensortypes.guess(key)
                    values.append({"organization_id": target.organization_id,
                                   "device_id": target.device_id, "key": key,
                                   "type": sensor_type, "unit": wanted[key].unit or unit,
                                   "status": "active", "created_at": now, "updated_at": now})
                await conn.execute(dialect_insert(sensors).values(values)
                                   .on_conflict_do_nothing(index_elements=["device_id", "key"]))
                rows = (await conn.execute(query.where(sensors.c.key.in_(new)))).all()
                await conn.commit()
            finally:
                await conn.close()
            known.update({row.key: SensorInfo(row.id, row.valid_min, row.valid_max)
                          for row in rows})
        for key, info in known.items():
            self._sensors.put((target.device_id, key), info)
        return known

