"""The ingestion path shared by HTTP, MQTT, connectors and import.

decode -> normalise -> resolve sensors (cached; unknown keys create sensors, within the
``SensorCaps``) -> validity (valid range, the organization's invalid tags) -> the group-commit
writer -> the answer. Every transport comes through here, so these rules hold for all of them.
"""

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from telemetra.db.tables import devices, sensors
from telemetra.ingest.batches import Origin, Row
from telemetra.ingest.decode import Reading, Rejection, decode_body
from telemetra.ingest.decode import screen as screen_readings
from telemetra.ingest.limits import DEFAULT_LIMITS, ReadingLimits
from telemetra.ingest.writer import Writer
from telemetra.kit.db import open_transaction
from telemetra.kit.errors import Invalid
from telemetra.kit.timeutil import utcnow
from telemetra.orgs import service as orgs
from telemetra.readings.flags import is_valid_reading, pack
from telemetra.sensors import types as sensortypes
from telemetra.sensors.service import SensorCaps, count_device_sensors, places_for
from telemetra.settings import Settings

CACHE_SECONDS = 30.0
# Past this many unknown keys, a device's sensors are read whole rather than by key: the list
# of keys would be a statement with as many parameters (100,000 were a 503 on PostgreSQL).
LOOKUP_BY_KEY_MAX = 500


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

    def __init__(self, engine: AsyncEngine, writer: Writer, *,
                 limits: ReadingLimits = DEFAULT_LIMITS,
                 sensor_caps: SensorCaps | None = None) -> None:
        self.engine = engine
        self.writer = writer
        self.limits = limits
        self.sensor_caps = sensor_caps or SensorCaps()
        self._sensors = _TTLCache(CACHE_SECONDS)  # (device_id, key) -> SensorInfo
        self._invalid_tags = _TTLCache(CACHE_SECONDS)  # organization_id -> frozenset
        self._devices = _TTLCache(DEVICE_CACHE_SECONDS)  # device_id -> DeviceInfo

    @classmethod
    def from_settings(cls, engine: AsyncEngine, writer: Writer, settings: Settings) -> "Ingestor":
        return cls(engine, writer,
                   limits=ReadingLimits(settings.min_reading_time,
                                        timedelta(seconds=settings.max_future_seconds)),
                   sensor_caps=SensorCaps(settings.max_new_sensors_per_request,
                                          settings.max_sensors_per_device))

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

    def decode(self, body: Any, *, now: datetime | None = None,
               **options: Any) -> tuple[list[Reading], list[Rejection]]:
        """``decode_body`` with this deployment's limits (``options``: value_key, byte_order,
        expect)."""
        return decode_body(body, limits=self.limits, now=now, **options)

    async def ingest(self, target: Target, body: Any, *, value_key: str = "value",
                     byte_order: str = "little") -> dict:
        """Decode, store durably, and answer ``{accepted, duplicates, rejected}``; a body none
        of whose readings can be stored is an ``Invalid`` (422) carrying the rejections."""
        now = utcnow()
        readings, rejected = self.decode(body, now=now, value_key=value_key,
                                         byte_order=byte_order)
        return await self.store(target, readings, rejected, now=now, refuse_empty=True)

    async def store(self, target: Target, readings: list[Reading],
                    rejected: list[Rejection] | None = None, *,
                    now: datetime | None = None, refuse_empty: bool = False,
                    screen: bool = False) -> dict:
        """Store decoded readings (``rejected``: the decoder's rejections of the same body).
        ``screen``: the readings were built elsewhere (an import) and go through the decoder's
        rules first; their rejections' indexes are positions in ``readings``."""
        now = now or utcnow()
        rejected = rejected if rejected is not None else []  # the caller sees them all
        if screen:
            readings, screened = screen_readings(readings, self.limits, now)
            rejected.extend(screened)
        rows = await self.rows(target, readings, now, rejected)
        if not rows and rejected and refuse_empty:
            reasons = list(dict.fromkeys(r.reason for r in rejected))
            raise Invalid(f"no reading of the body can be stored: {'; '.join(reasons[:3])}"
                          + ("; ..." if len(reasons) > 3 else ""), loc=["body"],
                          rejected=[r.as_dict() for r in rejected])
        inserted = await self.writer.write(rows) if rows else 0
        return {"accepted": inserted, "duplicates": len(rows) - inserted,
                "rejected": [r.as_dict() for r in rejected]}

    async def rows(self, target: Target, readings: list[Reading], now: datetime,
                   rejected: list[Rejection] | None = None) -> list[Row]:
        """The rows to write for readings of one device: sensors resolved (created when
        unknown, within the caps), validity decided, "now" for readings without a time.

        Readings whose sensor may not be created are left out, and added to ``rejected`` (the
        decoder's rejections of the same body, so the indexes are the body's)."""
        if not readings:
            return []
        sensors_by_key, refused = await self._resolve(target, readings)
        if refused:
            readings = _leave_out(readings, refused, rejected)
        invalid_tags = await self._organization_invalid_tags(target.organization_id)
        rows: list[Row] = []
        timed = Origin(target.device_id, target.organization_id)
        untimed = Origin(target.device_id, target.organization_id, server_timed=True)
        for reading in readings:
            sensor = sensors_by_key[reading.key]
            valid = is_valid_reading(reading.value, reading.tags, sensor.valid_min,
                                     sensor.valid_max, invalid_tags)
            rows.append((sensor.id, reading.ts or now, reading.value, pack(valid), reading.tags,
                         reading.meta, timed if reading.ts else untimed))
        return rows

    async def _organization_invalid_tags(self, organization_id: int) -> frozenset[str]:
        tags = self._invalid_tags.get(organization_id)
        if tags is None:
            async with self.engine.connect() as conn:
                tags = await orgs.invalid_tags(conn, organization_id)
            self._invalid_tags.put(organization_id, tags)
        return tags

    async def _resolve(self, target: Target, readings: list[Reading]
                       ) -> tuple[dict[str, SensorInfo], dict[str, str]]:
        """The sensor of each key, and the keys whose sensor may not be created, with why."""
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
        refused: dict[str, str] = {}
        if missing:
            known, refused = await self._load_or_create(target, missing)
            found.update(known)
        return found, refused

    async def _load_or_create(self, target: Target, wanted: dict[str, Reading]
                              ) -> tuple[dict[str, SensorInfo], dict[str, str]]:
        columns = (sensors.c.id, sensors.c.key, sensors.c.valid_min, sensors.c.valid_max)
        of_device = select(*columns).where(sensors.c.device_id == target.device_id)
        query = of_device.where(sensors.c.key.in_(list(wanted)))
        async with self.engine.connect() as conn:
            if len(wanted) > LOOKUP_BY_KEY_MAX:
                rows = [row for row in (await conn.execute(of_device)).all()
                        if row.key in wanted]
            else:
                rows = (await conn.execute(query)).all()
            known = {row.key: SensorInfo(row.id, row.valid_min, row.valid_max)
                     for row in rows}
            new = [key for key in wanted if key not in known]
            caps = self.sensor_caps
            if new and await count_device_sensors(conn, target.device_id) >= caps.per_device:
                new, refused = [], dict.fromkeys(new, caps.device_full)  # no write for nothing
            else:
                refused = {}
        if new:
            conn = await open_transaction(self.engine, write=True)
            try:
                new, refused = await places_for(conn, target.device_id, new, self.sensor_caps)
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
                if values:
                    await conn.execute(
                        dialect_insert(sensors).values(values)
                        .on_conflict_do_nothing(index_elements=["device_id", "key"]))
                    rows = (await conn.execute(of_device.where(sensors.c.key.in_(new)))).all()
                    known.update({row.key: SensorInfo(row.id, row.valid_min, row.valid_max)
                                  for row in rows})
                await conn.commit()
            finally:
                await conn.close()
        for key, info in known.items():
            self._sensors.put((target.device_id, key), info)
        return known, refused


def _leave_out(readings: list[Reading], refused: dict[str, str],
               rejected: list[Rejection] | None) -> list[Reading]:
    """The readings whose key is not ``refused``; the others become rejections, at their index
    in the body: the positions ``rejected`` does not hold, in order."""
    taken = {r.index for r in rejected} if rejected else set()
    kept, index = [], 0
    for reading in readings:
        while index in taken:
            index += 1
        reason = refused.get(reading.key)
        if reason is None:
            kept.append(reading)
        elif rejected is not None:
            rejected.append(Rejection(index, reason, reading.key))
        index += 1
    if rejected is not None:
        rejected.sort(key=lambda r: r.index)
    return kept

