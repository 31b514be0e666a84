"""The one way into ingestion: the HTTP route and fast path, MQTT device and connector topics,
imports (and, to come, http_pull connectors) all come through ``Ingestor``, each with the
``Source`` of its bodies.

``prepare`` (one body): decode -> normalise -> "too old" -> resolve sensors (cached; unknown
keys create sensors within ``SensorCaps``; a reading by sensor id only of the caller's device)
-> validity (valid range, the organization's invalid tags); a body of which nothing can be
stored is ``NothingStored`` (422). ``commit`` (the bodies answered together: one for an HTTP
request, the messages the MQTT consumer read together) -> the group-commit writer, one durable
write. ``ingest`` is the two for one body. A rule about readings lives here once; so do
the daily readings quota (``prepare``: ``OverDailyQuota``, 429) and the device key's rate
limit (``throttle``, called by the HTTP route and fast path before they read a body).
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from telemetra.db.tables import devices, sensors
from telemetra.ingest.batches import Origin, Row
from telemetra.ingest.caches import CacheSizes, ForgetfulCache
from telemetra.ingest.decode import Reading, Rejection, decode_body
from telemetra.ingest.decode import screen as screen_readings
from telemetra.ingest.limits import DEFAULT_LIMITS, ReadingLimits
from telemetra.ingest.lookups import lookups_for
from telemetra.ingest.writer import Writer
from telemetra.kit.db import write_transaction
from telemetra.kit.errors import Invalid, RateLimited, TelemetraError
from telemetra.kit.events import EventBus
from telemetra.kit.ratelimit import RateLimits
from telemetra.kit.timeutil import utcnow
from telemetra.orgs import service as orgs
from telemetra.orgs.usage import UsageMeter, seconds_to_midnight
from telemetra.readings.flags import is_valid_reading, pack
from telemetra.sensors import service as sensor_service
from telemetra.sensors.service import SensorCaps, count_device_sensors
from telemetra.settings import Settings

# Past this many unknown keys, a device's sensors are read whole rather than by key: the list
# of keys would be a statement with as many parameters (100,000 were a 503 on PostgreSQL).
LOOKUP_BY_KEY_MAX = 500
# A device not in the sensor cache has this many of its sensors read at once, whatever the
# body names: a fleet device sends one key at a time, and reading only that one made each of
# its keys a query of its own.
FIRST_SIGHT_SENSORS = 500
TOO_OLD_TAG = "too old"


@dataclass(frozen=True, slots=True)
class Source:
    """How one source's bodies are read (API.md, "Ingestion" and "Connectors")."""

    value_key: str = "value"  # body 6's key when an item names none
    byte_order: str = "little"  # body 6's float32
    expect: str | None = None  # one of ``decode.FORMAT_NAMES``: only that body is taken
    max_age_seconds: int | None = None  # older than this on arrival: tagged "too old"
    refuse_empty: bool = True  # a body nothing of which can be stored is ``NothingStored``
    screen: bool = False  # the body is readings built elsewhere (an import's lines)
    # Fields no format has are refused, naming them; a connector's upstream, which its user
    # cannot change, is read leniently (an extra "id" or "quality" is ignored).
    strict: bool = True


DEVICE = Source()  # a device's own bodies, over HTTP or its MQTT topic
IMPORT = Source(refuse_empty=False, screen=True)


class NothingStored(Invalid):
    """A body none of whose readings can be stored: a 422 carrying each with its reason."""

    def __init__(self, rejected: list[Rejection]) -> None:
        reasons = list(dict.fromkeys(r.reason for r in rejected))
        super().__init__(f"no reading of the body can be stored: {'; '.join(reasons[:3])}"
                         + ("; ..." if len(reasons) > 3 else ""), loc=["body"],
                         rejected=[r.as_dict() for r in rejected])
        self.rejected = rejected


class OverDailyQuota(NothingStored):
    """The organization's readings of today, with this body's, would pass its plan's daily
    quota: nothing of the body is stored; a 429 with ``Retry-After`` until midnight UTC. A
    ``NothingStored``, so MQTT counts the message rejected with this reason."""

    status = 429
    code = "quota_exceeded"
    title = "Quota Exceeded"

    def __init__(self, limit: int, readings: int) -> None:
        retry_after = seconds_to_midnight()
        TelemetraError.__init__(
            self, f"over the daily readings quota: the organization's plan allows {limit:,} "
                  "readings a day, and this body's readings would pass it; it resets at "
                  "midnight UTC (see Retry-After)", headers={"Retry-After": str(retry_after)},
            limit="max_readings_per_day", limit_value=limit)
        self.rejected = []


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


@dataclass(slots=True)
class Prepared:
    """One body ready for the writer: its rows, and its readings rejected (body indexes)."""

    target: Target
    rows: list[Row]
    rejected: list[Rejection]

    def answer(self, stored: "Stored") -> dict:
        """What ingestion answers for this body alone (``{accepted, duplicates, rejected}``)."""
        return {"accepted": stored.accepted, "duplicates": stored.duplicates,
                "rejected": [r.as_dict() for r in self.rejected]}


@dataclass(frozen=True, slots=True)
class Stored:
    """What one durable write did: rows stored, and rows already stored (duplicates)."""

    accepted: int
    duplicates: int


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


async def find_target_of_sensors(engine: AsyncEngine, organization_id: int,
                                 sensor_ids: set[int]) -> list[Target]:
    """The devices of the organization that these sensors are of."""
    query = (select(sensors.c.device_id).distinct()
             .where(sensors.c.id.in_(sorted(sensor_ids)),
                    sensors.c.organization_id == organization_id))
    async with engine.connect() as conn:
        found = (await conn.scalars(query)).all()
    return [Target(device_id, organization_id) for device_id in sorted(found)]


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """A device as the ingestion path needs it (cached: MQTT looks it up per message)."""

    target: Target
    status: str


_NO_SENSORS: dict = {}


def _tag_too_old(readings: list[Reading], oldest: datetime) -> None:
    for reading in readings:
        if reading.ts is not None and reading.ts < oldest:
            reading.tags = [*(reading.tags or []), TOO_OLD_TAG]


def _handle(reading: Reading) -> str | int:
    """What names a reading's sensor: its key, or (body 7) its sensor id."""
    return reading.key if reading.sensor_id is None else reading.sensor_id


class Ingestor:
    """Everything the ingestion path needs, built once in the lifespan."""

    def __init__(self, engine: AsyncEngine, writer: Writer, *,
                 limits: ReadingLimits = DEFAULT_LIMITS,
                 sensor_caps: SensorCaps | None = None,
                 cache_sizes: CacheSizes | None = None,
                 bus: EventBus | None = None, usage: UsageMeter | None = None,
                 rate_limits: RateLimits | None = None) -> None:
        self.engine = engine
        self.writer = writer
        self.usage = usage  # the daily readings quota, and refusals counted by device
        self.rate_limits = rate_limits
        self.limits = limits
        self.sensor_caps = sensor_caps or SensorCaps()
        self.bus = bus
        sizes = cache_sizes or CacheSizes()
        # device_id -> {key or sensor id: SensorInfo}, sized in sensors (a device without
        # any counts one, so that the cache stays bounded however many such devices it sees)
        self._sensors = ForgetfulCache(sizes.sensors, getsizeof=lambda known: len(known) or 1)
        self._invalid_tags = ForgetfulCache(sizes.organizations)  # organization_id -> tags
        self._devices = ForgetfulCache(sizes.devices)  # device_id -> DeviceInfo
        # The lookups of a cache miss (telemetra.ingest.lookups); the fast path's key check too.
        self.lookups = lookups_for(engine)

    @classmethod
    def from_settings(cls, engine: AsyncEngine, writer: Writer, settings: Settings,
                      bus: EventBus | None = None, usage: UsageMeter | None = None,
                      rate_limits: RateLimits | None = None) -> "Ingestor":
        return cls(engine, writer,
                   limits=ReadingLimits(settings.min_reading_time,
                                        timedelta(seconds=settings.max_future_seconds)),
                   sensor_caps=SensorCaps(settings.max_new_sensors_per_request,
                                          settings.max_sensors_per_device),
                   cache_sizes=CacheSizes(settings.sensor_cache_size, settings.device_cache_size,
                                          settings.organization_cache_size),
                   bus=bus, usage=usage, rate_limits=rate_limits)

    async def close(self) -> None:
        """Close what the lookups hold (SQLite's own connection and thread)."""
        await self.lookups.close()

    def forget_device(self, device_id: int) -> None:
        """Drop what is cached about a device (it, or its sensors, changed)."""
        self._sensors.forget(device_id)
        self._devices.forget(device_id)

    def forget_organization(self, organization_id: int) -> None:
        """Drop what is cached about an organization (its invalid tags changed)."""
        self._invalid_tags.forget(organization_id)

    def forget_everything(self) -> None:
        """Drop every cached device, sensor and organization (events may have been missed)."""
        for cache in (self._sensors, self._invalid_tags, self._devices):
            cache.clear()

    @property
    def cached_sensors(self) -> int:
        """How many sensors the sensor cache holds (at most ``TELEMETRA_SENSOR_CACHE_SIZE``)."""
        return self._sensors.size

    async def device(self, device_id: int) -> DeviceInfo | None:
        """The device with this id in any organization (the broker vouched for it), or None."""
        info = self._devices.get(device_id)
        if info is None:
            generation = self._devices.generation
            query = (select(devices.c.organization_id, devices.c.status)
                     .where(devices.c.id == device_id))
            async with self.engine.connect() as conn:
                row = (await conn.execute(query)).first()
            if row is None:
                return None
            info = DeviceInfo(Target(device_id, row.organization_id), row.status)
            self._devices.put(device_id, info, generation)
        return info

    async def throttle(self, target: Target) -> None:
        """The device key's rate limit, for one ingestion request of the device: raises
        ``RateLimited`` (429) past it, and counts the refusal for the device."""
        if self.rate_limits is None or self.rate_limits.ingest is None:
            return
        try:
            await self.rate_limits.device(target.device_id)
        except RateLimited:
            if self.usage is not None:
                self.usage.rejected(target.organization_id, target.device_id, "rate_limited")
            raise

    async def _within_quota(self, target: Target, rows: list[Row]) -> None:
        if self.usage is not None and rows:
            limit = await self.usage.refuses(target.organization_id, target.device_id,
                                             len(rows))
            if limit is not None:
                raise OverDailyQuota(limit, len(rows))

    async def ingest(self, target: Target, body: Any, source: Source = DEVICE) -> dict:
        """One body, prepared and committed: ``{accepted, duplicates, rejected}`` once durable.
        Raises ``Invalid`` (422) for a body that is none of the formats, ``NothingStored``
        (422) for one none of whose readings can be stored."""
        prepared = await self.prepare(target, body, source)
        return prepared.answer(await self.commit([prepared]))

    async def prepare(self, target: Target, body: Any, source: Source = DEVICE, *,
                      now: datetime | None = None) -> Prepared:
        """Everything but the write, for one body of ``source`` sent for ``target``: the rows
        to store and the readings rejected, with their reasons. ``now`` (default: the clock)
        times readings that have no time, and is what "in the future" and "too old" are
        measured from. ``source.screen``: ``body`` is a list of ``Reading`` built elsewhere,
        whose rejections' indexes are positions in it."""
        now = now or utcnow()
        readings, rejected = self._decoded(body, source, now)
        rows = await self._rows(target, readings, now, rejected)
        if not rows and rejected and source.refuse_empty:
            raise NothingStored(rejected)
        await self._within_quota(target, rows)
        return Prepared(target, rows, rejected)

    async def commit(self, prepared: Sequence[Prepared]) -> Stored:
        """One durable write of the rows of ``prepared`` (the group-commit writer)."""
        if len(prepared) == 1:
            rows = prepared[0].rows
        else:
            rows = [row for body in prepared for row in body.rows]
        if not rows:
            return Stored(0, 0)
        inserted = await self.writer.write(rows)
        return Stored(inserted, len(rows) - inserted)

    async def _rows(self, target: Target, readings: list[Reading], now: datetime,
                    rejected: list[Rejection]) -> list[Row]:
        """The rows to write for readings of one device: sensors resolved (created when
        unknown, within the caps), validity decided, "now" for readings without a time.

        Readings whose sensor may not be had are left out, and added to ``rejected`` (the
        decoder's rejections of the same body, so the indexes are the body's)."""
        if not readings:
            return []
        sensors_of, refused = await self._resolve(target, readings)
        if refused:
            readings = _leave_out(readings, refused, rejected)
        invalid_tags = await self._organization_invalid_tags(target.organization_id)
        rows: list[Row] = []
        timed = Origin(target.device_id, target.organization_id)
        untimed = Origin(target.device_id, target.organization_id, server_timed=True)
        for reading in readings:
            sensor = sensors_of[_handle(reading)]
            valid = is_valid_reading(reading.value, reading.tags, sensor.valid_min,
                                     sensor.valid_max, invalid_tags)
            rows.append((sensor.id, reading.ts or now, reading.value, pack(valid), reading.tags,
                         reading.meta, timed if reading.ts else untimed))
        return rows

    async def _organization_invalid_tags(self, organization_id: int) -> frozenset[str]:
        tags = self._invalid_tags.get(organization_id)
        if tags is None:
            generation = self._invalid_tags.generation
            async with self.engine.connect() as conn:
                tags = await orgs.invalid_tags(conn, organization_id)
            self._invalid_tags.put(organization_id, tags, generation)
        return tags

    async def _resolve(self, target: Target, readings: list[Reading]
                       ) -> tuple[dict[str | int, SensorInfo], dict[str | int, str]]:
        """The sensor of each reading's handle, and the handles refused, with why."""
        known = self._sensors.get(target.device_id)
        if known is None:
            known = await self._first_sight(target.device_id)
        missing: dict[str | int, Reading] = {}
        for reading in readings:
            handle = _handle(reading)
            if handle not in known and handle not in missing:
                missing[handle] = reading
        if not missing:
            return known, {}
        loaded, refused = await self._load_or_create(target, missing)
        return {**known, **loaded}, refused

    async def _first_sight(self, device_id: int) -> dict[str | int, SensorInfo]:
        """The sensors of a device not in the cache (up to ``FIRST_SIGHT_SENSORS``), cached."""
        generation = self._sensors.generation
        rows = await self.lookups.sensors_of_device(device_id, FIRST_SIGHT_SENSORS)
        known = {key: SensorInfo(sensor_id, low, high) for sensor_id, key, low, high in rows}
        self._sensors.put(device_id, known, generation)
        return known

    async def _load_or_create(self, target: Target, wanted: dict[str | int, Reading]
                              ) -> tuple[dict[str | int, SensorInfo], dict[str | int, str]]:
        generation = self._sensors.generation
        keys = [handle for handle in wanted if isinstance(handle, str)]
        ids = [handle for handle in wanted if isinstance(handle, int)]
        columns = (sensors.c.id, sensors.c.key, sensors.c.valid_min, sensors.c.valid_max)
        of_device = select(*columns).where(sensors.c.device_id == target.device_id)
        known: dict[str | int, SensorInfo] = {}
        refused: dict[str | int, str] = {}
        new: list[str] = []
        async with self.engine.connect() as conn:
            if ids:  # body 7: only the caller's device's sensors, never another's
                for row in (await conn.execute(of_device.where(sensors.c.id.in_(ids)))).all():
                    known[row.id] = SensorInfo(row.id, row.valid_min, row.valid_max)
                refused.update({i: f"sensor {i} not found on this device"
                                for i in ids if i not in known})
            if keys:
                if len(keys) > LOOKUP_BY_KEY_MAX:
                    wanted_keys = set(keys)
                    rows = [row for row in (await conn.execute(of_device)).all()
                            if row.key in wanted_keys]
                else:
                    rows = (await conn.execute(of_device.where(sensors.c.key.in_(keys)))).all()
                for row in rows:
                    known[row.key] = SensorInfo(row.id, row.valid_min, row.valid_max)
                new = [key for key in keys if key not in known]
                caps = self.sensor_caps
                if new and (await count_device_sensors(conn, target.device_id)
                            >= caps.per_device):
                    refused.update(dict.fromkeys(new, caps.device_full))  # no write for nothing
                    new = []
        if new:
            async with write_transaction(self.engine, self.bus) as conn:
                rows, full = await sensor_service.create_for_readings(
                    conn, target.organization_id, target.device_id,
                    {key: wanted[key].unit for key in new}, self.sensor_caps)
            refused.update(full)
            known.update({row.key: SensorInfo(row.id, row.valid_min, row.valid_max)
                          for row in rows})
        if known:
            cached = self._sensors.get(target.device_id) or _NO_SENSORS
            self._sensors.put(target.device_id, {**cached, **known}, generation)
        return known, refused


    # -- many bodies at once (appended for the MQTT consumer's batches) -------------------

    async def devices_of(self, device_ids: Iterable[int]) -> dict[int, DeviceInfo]:
        """``device`` for many ids at once: the devices that exist (any organization), by id.
        Cached ones cost nothing, the others one query for all of them: a batch of a fleet's
        messages names mostly different devices."""
        found: dict[int, DeviceInfo] = {}
        missing: list[int] = []
        for device_id in dict.fromkeys(device_ids):
            info = self._devices.get(device_id)
            if info is None:
                missing.append(device_id)
            else:
                found[device_id] = info
        if not missing:
            return found
        generation = self._devices.generation
        async with self.engine.connect() as conn:
            for start in range(0, len(missing), LOOKUP_BY_KEY_MAX):
                chunk = padded(missing[start:start + LOOKUP_BY_KEY_MAX])
                query = (select(devices.c.id, devices.c.organization_id, devices.c.status)
                         .where(devices.c.id.in_(chunk)))
                for row in (await conn.execute(query)).all():
                    info = DeviceInfo(Target(row.id, row.organization_id), row.status)
                    self._devices.put(row.id, info, generation)
                    found[row.id] = info
        return found

    async def prepare_many(self, bodies: Sequence[tuple[Target, Any]], source: Source = DEVICE,
                           *, now: datetime | None = None) -> list["Prepared | Exception"]:
        """``prepare`` for each of many bodies, in order: its ``Prepared``, or the exception
        preparing it raised (``Invalid``, ``NothingStored``, storage trouble creating its
        sensors), so one body cannot take the others with it. The sensors the cache lacks
        are read first for all the bodies' devices in one query, so a batch spread over a
        fleet costs one round trip, not one a device. Storage trouble in that query raises."""
        now = now or utcnow()
        decoded: list = []
        wanted: dict[int, set[str]] = {}
        for target, body in bodies:
            try:
                readings, rejected = self._decoded(body, source, now)
            except Invalid as invalid:
                decoded.append(invalid)
                continue
            decoded.append((readings, rejected))
            known = self._sensors.get(target.device_id) or _NO_SENSORS
            keys = {r.key for r in readings if r.sensor_id is None and r.key not in known}
            if keys:
                wanted.setdefault(target.device_id, set()).update(keys)
        if wanted:
            found = await self._preload_sensors(wanted)
            if found is not None:
                await self._create_many(bodies, decoded, {
                    device_id: keys - found.get(device_id, {}).keys()
                    for device_id, keys in wanted.items()})
        results: list[Prepared | Exception] = []
        for (target, _), item in zip(bodies, decoded, strict=True):
            if isinstance(item, Exception):
                results.append(item)
                continue
            readings, rejected = item
            try:
                rows = await self._rows(target, readings, now, rejected)
                if not rows and rejected and source.refuse_empty:
                    raise NothingStored(rejected)
                await self._within_quota(target, rows)
            except Exception as exc:  # handed back: the caller decides, body by body
                results.append(exc)
            else:
                results.append(Prepared(target, rows, rejected))
        return results

    def _decoded(self, body: Any, source: Source, now: datetime
                 ) -> tuple[list[Reading], list[Rejection]]:
        """``prepare``'s first steps: decode (or screen) the body, tag what is too old."""
        if source.screen:
            readings, rejected = screen_readings(body, self.limits, now)
        else:
            readings, rejected = decode_body(body, value_key=source.value_key,
                                             byte_order=source.byte_order,
                                             expect=source.expect, limits=self.limits, now=now,
                                             strict=source.strict)
        if source.max_age_seconds is not None:
            _tag_too_old(readings, now - timedelta(seconds=source.max_age_seconds))
        return readings, rejected

    async def _create_many(self, bodies: Sequence[tuple[Target, Any]], decoded: list,
                           missing: dict[int, set[str]]) -> None:
        """Create the sensors of unknown keys of many devices in one unit of work (a fleet's
        first messages: one commit for the batch, not one a device, which under load kept a
        batch's readings uncommitted for tens of seconds). A device whose new keys exceed
        what one request may create is left to ``_rows``, body by body, as are keys refused."""
        missing = {device_id: keys for device_id, keys in missing.items()
                   if keys and len(keys) <= self.sensor_caps.per_request}
        if len(missing) < 2:  # one device: ``_rows`` creates them as for one body
            return
        units: dict[int, tuple[Target, dict[str, str | None]]] = {}
        for (target, _), item in zip(bodies, decoded, strict=True):
            keys = missing.get(target.device_id)
            if keys is None or isinstance(item, Exception):
                continue
            of_device = units.setdefault(target.device_id, (target, {}))[1]
            for reading in item[0]:
                if reading.key in keys:
                    of_device.setdefault(reading.key, reading.unit)
        generation = self._sensors.generation
        created: dict[int, dict[str | int, SensorInfo]] = {}
        async with write_transaction(self.engine, self.bus) as conn:
            for device_id in sorted(units):  # one order everywhere: no deadlock between writers
                target, of_device = units[device_id]
                rows, _ = await sensor_service.create_for_readings(
                    conn, target.organization_id, device_id, of_device, self.sensor_caps)
                created[device_id] = {row.key: SensorInfo(row.id, row.valid_min, row.valid_max)
                                      for row in rows}
        for device_id, infos in created.items():
            if infos:
                cached = self._sensors.get(device_id) or _NO_SENSORS
                self._sensors.put(device_id, {**cached, **infos}, generation)

    async def _preload_sensors(self, wanted: dict[int, set[str]]
                               ) -> dict[int, dict[str | int, SensorInfo]] | None:
        """Cache the existing sensors of these keys of these devices, in one query (chunked),
        and return them (None: too many keys to name); the keys not found are created."""
        keys = sorted(set().union(*wanted.values()))
        if len(keys) > LOOKUP_BY_KEY_MAX:  # too many to name: each body looks its own up
            return None
        generation = self._sensors.generation
        ids = sorted(wanted)
        found: dict[int, dict[str | int, SensorInfo]] = {}
        async with self.engine.connect() as conn:
            for start in range(0, len(ids), LOOKUP_BY_KEY_MAX):
                query = (select(sensors.c.device_id, sensors.c.id, sensors.c.key,
                                sensors.c.valid_min, sensors.c.valid_max)
                         .where(sensors.c.device_id.in_(
                                    padded(ids[start:start + LOOKUP_BY_KEY_MAX])),
                                sensors.c.key.in_(padded(keys))))
                for row in (await conn.execute(query)).all():
                    found.setdefault(row.device_id, {})[row.key] = SensorInfo(
                        row.id, row.valid_min, row.valid_max)
        for device_id, infos in found.items():
            cached = self._sensors.get(device_id) or _NO_SENSORS
            self._sensors.put(device_id, {**cached, **infos}, generation)
        return found


def padded(values: list) -> list:
    """``values`` repeated at the end up to a power of two: an ``IN`` list of another length is
    another statement, prepared again and cached again by the driver on each connection;
    this way a batch's lookups are a handful of statements whatever the batch's size."""
    size = 1 << max(len(values) - 1, 0).bit_length()
    return values + values[-1:] * (size - len(values))


def _leave_out(readings: list[Reading], refused: dict[str | int, str],
               rejected: list[Rejection]) -> list[Reading]:
    """The readings whose sensor is not ``refused``; the others become rejections, at their
    index in the body: the positions ``rejected`` does not hold, in order."""
    taken = {r.index for r in rejected}
    kept, index = [], 0
    for reading in readings:
        while index in taken:
            index += 1
        reason = refused.get(_handle(reading))
        if reason is None:
            kept.append(reading)
        else:
            rejected.append(Rejection(index, reason, reading.key))
        index += 1
    rejected.sort(key=lambda r: r.index)
    return kept
