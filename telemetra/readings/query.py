"""Reading queries: filters shared by list, export, delete and review; list; latest; one."""

from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from sqlalchemy import Integer, Select, and_, bindparam, func, literal, select, true, tuple_
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from telemetra.db.direct import direct_query
from telemetra.db.tables import devices, group_members, readings, sensors
from telemetra.db.types import ReadingTime
from telemetra.kit.errors import Invalid, NotFound
from telemetra.readings import flags as F
from telemetra.readings.flags import ReviewStatus
from telemetra.readings.ids import (
    make_cursor,
    make_sensor_cursor,
    parse_cursor,
    parse_reading_id,
    parse_sensor_cursor,
    reading_id,
)

READING_COLUMNS = (readings.c.sensor_id, readings.c.ts, readings.c.value, readings.c.flags,
                   readings.c.tags, readings.c.meta, sensors.c.device_id, sensors.c.key,
                   sensors.c.unit)
MAX_LIMIT = 10_000


@dataclass
class ReadingFilter:
    """What a reading query selects. ``organization_id`` always applies."""

    organization_id: int
    device_id: int | None = None
    sensor_id: int | None = None
    keys: list[str] = field(default_factory=list)
    site_id: int | None = None
    group_id: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    status: ReviewStatus | None = None
    include_invalid: bool = False

    def check_range(self) -> None:
        if self.start and self.end and self.start > self.end:
            raise Invalid("start is after end", loc=["query", "start"])

    @property
    def shape(self) -> tuple:
        """Which filters are set: statements are built once per shape (see ``sensor_ids_for``)
        and executed with ``params``."""
        return (self.sensor_id is not None, self.device_id is not None, bool(self.keys),
                self.site_id is not None, self.group_id is not None, self.start is not None,
                self.end is not None, self.status, self.include_invalid)

    @property
    def params(self) -> dict:
        values = {"f_org": self.organization_id, "f_sensor": self.sensor_id,
                  "f_device": self.device_id, "f_keys": self.keys, "f_site": self.site_id,
                  "f_group": self.group_id, "f_start": self.start, "f_end": self.end}
        return {name: value for name, value in values.items()
                if value is not None and value != []}

    def sensor_ids(self) -> Select:
        """The organization's sensors these filters name (execute with ``params``)."""
        return sensor_ids_for(self.shape)

    def reading_clauses(self) -> list:
        """Conditions on the readings table itself: time, review status, validity (execute
        with ``params``)."""
        return list(reading_clauses_for(self.shape))

    def select_readings(self) -> Select:
        return _select_readings(self.shape)


@lru_cache(maxsize=512)
def sensor_clauses_for(shape: tuple) -> tuple:
    """Conditions on the sensors table: the organization's sensors the filters name."""
    sensor, device, keys, site, group = shape[:5]
    clauses = [sensors.c.organization_id == bindparam("f_org")]
    if sensor:
        clauses.append(sensors.c.id == bindparam("f_sensor"))
    if device:
        clauses.append(sensors.c.device_id == bindparam("f_device"))
    if keys:
        clauses.append(sensors.c.key.in_(bindparam("f_keys", expanding=True)))
    if site:
        clauses.append(sensors.c.device_id.in_(
            select(devices.c.id).where(devices.c.site_id == bindparam("f_site"))))
    if group:
        clauses.append(sensors.c.device_id.in_(
            select(group_members.c.device_id)
            .where(group_members.c.group_id == bindparam("f_group"))))
    return tuple(clauses)


@lru_cache(maxsize=512)
def sensor_ids_for(shape: tuple) -> Select:
    return select(sensors.c.id).where(*sensor_clauses_for(shape))


@lru_cache(maxsize=512)
def reading_clauses_for(shape: tuple, table=readings) -> tuple:
    start, end, status, include_invalid = shape[5:]
    clauses = []
    if start:
        clauses.append(table.c.ts >= bindparam("f_start", type_=ReadingTime()))
    if end:
        clauses.append(table.c.ts <= bindparam("f_end", type_=ReadingTime()))
    if status is not None:
        clauses.append(F.status_clause(table.c.flags, status))
    if not include_invalid:
        clauses.append(F.valid_clause(table.c.flags))
    return tuple(clauses)


@lru_cache(maxsize=512)
def _select_readings(shape: tuple) -> Select:
    return (select(*READING_COLUMNS)
            .join_from(readings, sensors, sensors.c.id == readings.c.sensor_id)
            .where(readings.c.sensor_id.in_(sensor_ids_for(shape)), *reading_clauses_for(shape)))


def reading_out(row: RowMapping) -> dict:
    return _reading(row["sensor_id"], row["ts"], row["value"], row["flags"], row["tags"],
                    row["meta"], row["device_id"], row["key"], row["unit"])


def _reading(sensor_id: int, ts: datetime, value: float, flags: int, tags: list | None,
             meta: dict | None, device_id: int, key: str, unit: str | None) -> dict:
    """A reading as the API shows it, from the values of ``READING_COLUMNS``."""
    return {"id": reading_id(sensor_id, ts), "sensor_id": sensor_id, "device_id": device_id,
            "key": key, "ts": ts, "value": value, "unit": unit, "valid": F.is_valid(flags),
            "status": F.status_of(flags), "tags": tags, "meta": meta}


async def list_readings(conn: AsyncConnection, where: ReadingFilter, *, order: str = "desc",
                        limit: int = 100, skip: int = 0,
                        cursor: str | None = None) -> tuple[list[dict], str | None]:
    """A page of readings ordered by time (then sensor), with the cursor of the next page."""
    where.check_range()
    query = where.select_readings()
    key = tuple_(readings.c.ts, readings.c.sensor_id)
    if cursor:
        ts, sensor_id = parse_cursor(cursor)
        after = tuple_(literal(ts, ReadingTime()), literal(sensor_id, Integer()))
        query = query.where(key > after if order == "asc" else key < after)
    if order == "asc":
        query = query.order_by(readings.c.ts.asc(), readings.c.sensor_id.asc())
    else:
        query = query.order_by(readings.c.ts.desc(), readings.c.sensor_id.desc())
    rows = (await conn.execute(query.offset(skip).limit(limit + 1), where.params)
            ).mappings().all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = make_cursor(rows[-1]["ts"], rows[-1]["sensor_id"]) if more else None
    return [reading_out(row) for row in rows], next_cursor


async def latest_readings(conn: AsyncConnection, where: ReadingFilter, *,
                          limit: int = MAX_LIMIT, cursor: str | None = None
                          ) -> tuple[list[dict], str | None]:
    """A page of the latest reading of each sensor the filters name, by sensor id (one query,
    index lookups), with the cursor of the next page."""
    statement = _latest_statement(conn.dialect.name, where.shape)
    after = parse_sensor_cursor(cursor) if cursor else 0
    rows = await direct_query(statement, conn.dialect).fetch(
        conn, {**where.params, "f_after": after, "f_limit": limit + 1})
    more = len(rows) > limit
    items = [_reading(*row) for row in rows[:limit]]
    return items, make_sensor_cursor(items[-1]["sensor_id"]) if more else None


@lru_cache(maxsize=512)
def _latest_statement(dialect: str, shape: tuple) -> Select:
    """PostgreSQL reads each sensor's primary key backwards to its newest reading (LATERAL
    ... LIMIT 1, partition by partition); SQLite, without LATERAL, looks up its max(ts).
    Sensors in id order from ``f_after`` on, ``f_limit`` of them."""
    include_invalid = shape[-1]
    page = (sensors.c.id > bindparam("f_after", type_=Integer()),
            *sensor_clauses_for(shape))
    limit = bindparam("f_limit", type_=Integer())
    if dialect == "postgresql":
        # OFFSET 0 plans the sensors apart: with the LIMIT above them, PostgreSQL otherwise
        # scanned the whole sensors table instead of the device's index entries (measured).
        chosen = (select(sensors.c.id, sensors.c.device_id, sensors.c.key, sensors.c.unit)
                  .where(*page).offset(0).subquery("chosen"))
        newest = (select(readings)
                  .where(readings.c.sensor_id == chosen.c.id,
                         *([] if include_invalid else [F.valid_clause(readings.c.flags)]))
                  .order_by(readings.c.ts.desc()).limit(1)
                  .lateral("newest"))
        columns = [newest.c[column.key] if column.table is readings else chosen.c[column.key]
                   for column in READING_COLUMNS]
        return (select(*columns).select_from(chosen.join(newest, true()))
                .order_by(chosen.c.id).limit(limit))
    inner = readings.alias("inner")
    newest = (select(func.max(inner.c.ts))
              .where(inner.c.sensor_id == sensors.c.id,
                     *([] if include_invalid else [F.valid_clause(inner.c.flags)]))
              .scalar_subquery())
    return (select(*READING_COLUMNS)
            .join_from(sensors, readings, and_(readings.c.sensor_id == sensors.c.id,
                                               readings.c.ts == newest))
            .where(*page)
            .order_by(sensors.c.id).limit(limit))


async def get_reading(conn: AsyncConnection, organization_id: int, reading: str,
                      include_invalid: bool) -> dict:
    sensor_id, ts = parse_reading_id(reading)
    row = (await conn.execute(
        select(*READING_COLUMNS)
        .join_from(readings, sensors, sensors.c.id == readings.c.sensor_id)
        .where(readings.c.sensor_id == sensor_id, readings.c.ts == ts,
               sensors.c.organization_id == organization_id)
    )).mappings().first()
    if row is None or (not include_invalid and not F.is_valid(row["flags"])):
        raise NotFound(f"reading {reading} not found")
    return reading_out(row)
