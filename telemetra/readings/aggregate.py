"""Windowed aggregation: one row per sensor and bucket; empty buckets are absent.

PostgreSQL computes buckets in SQL (``date_bin`` and ``AT TIME ZONE``). SQLite has no time
zone data: fixed widths are integer arithmetic on epoch microseconds, calendar buckets use
boundaries computed here (local midnights, with their 23- and 25-hour days) through a
function registered on the connection.
"""

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    Integer,
    Select,
    func,
    literal,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from telemetra.db.tables import readings, sensors
from telemetra.db.types import ReadingTime
from telemetra.kit.errors import Invalid
from telemetra.readings.buckets import (
    BoundaryIndex,
    Interval,
    calendar_boundaries,
    fixed_offset_seconds,
)
from telemetra.readings.query import ReadingFilter, reading_clauses_for, sensor_ids_for

FUNCTIONS = ("avg", "min", "max", "sum", "count", "first", "last")
MAX_ROWS = 100_000
_SQLITE_BUCKET_FN = "telemetra_bucket"


def parse_functions(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in FUNCTIONS]
    if not names or unknown:
        raise Invalid(f"fn: {', '.join(unknown) or 'nothing'} is not one of "
                      f"{', '.join(FUNCTIONS)}", loc=["query", "fn"])
    return list(dict.fromkeys(names))


def _pg_bucket(interval: Interval, zone: ZoneInfo, offset: int):
    ts = readings.c.ts
    if interval.fixed:
        return func.date_bin(literal_column(f"interval '{interval.seconds} seconds'"), ts,
                             func.to_timestamp(literal(offset, Integer)))
    tz = literal(zone.key)
    local = func.timezone(tz, ts)
    if interval.unit == "d":
        start = func.date_bin(literal_column(f"interval '{interval.count} days'"), local,
                              literal_column("TIMESTAMP '1970-01-01'"))
    elif interval.unit == "w":
        start = func.date_bin(literal_column(f"interval '{interval.count * 7} days'"), local,
                              literal_column("TIMESTAMP '1970-01-05'"))
    elif interval.count == 1:
        start = func.date_trunc("month", local)
    else:
        index = (func.extract("year", local) * 12 + func.extract("month", local) - 1)
        first = func.floor(index / interval.count) * interval.count
        start = func.make_timestamp(func.floor(first / 12).cast(Integer),
                                    (func.mod(first, 12) + 1).cast(Integer), 1, 0, 0, 0)
    return func.timezone(tz, start)


def _sqlite_fixed_bucket(interval: Interval, offset: int):
    width = interval.seconds * 1_000_000
    shift = offset * 1_000_000
    micros = type_coerce(readings.c.ts, BigInteger)  # integer epoch microseconds on SQLite
    return ((micros - shift) // width) * width + shift


async def _register_calendar(conn: AsyncConnection, where: ReadingFilter, interval: Interval,
                             zone: ZoneInfo) -> bool:
    """Give SQLite this query's calendar boundaries; False when nothing is selected."""
    start, end = where.start, where.end
    if start is None or end is None:
        bounds = (await conn.execute(
            select(func.min(readings.c.ts), func.max(readings.c.ts))
            .where(readings.c.sensor_id.in_(where.sensor_ids()), *where.reading_clauses()),
            where.params)).one()
        if bounds[0] is None:
            return False
        start = start or bounds[0]
        end = end or bounds[1]
    index = BoundaryIndex(calendar_boundaries(start, end, interval, zone))
    raw = await conn.get_raw_connection()
    await raw.driver_connection.create_function(_SQLITE_BUCKET_FN, 1, index,
                                                deterministic=True)
    return True


async def aggregate(conn: AsyncConnection, where: ReadingFilter, interval: Interval,
                    functions: list[str], zone: ZoneInfo, *, per_sensor: bool = True
                    ) -> list[dict]:
    """Rows per sensor and bucket; with ``per_sensor=False`` one series across all the
    selected sensors (rows per bucket only)."""
    where.check_range()
    offset = fixed_offset_seconds(zone, where.start or datetime.now(UTC))
    dialect = conn.dialect.name
    if dialect == "sqlite" and not interval.fixed:
        if not await _register_calendar(conn, where, interval, zone):
            return []
    statement = _statement(dialect, where.shape, interval, tuple(functions), zone.key, offset,
                           per_sensor)
    rows = (await conn.execute(statement, where.params)).mappings().all()
    if len(rows) > MAX_ROWS:
        raise Invalid(f"more than {MAX_ROWS} buckets: narrow the range or widen the interval",
                      loc=["query", "interval"])
    return [_row_out(row, functions, per_sensor) for row in rows]


@lru_cache(maxsize=512)
def _statement(dialect: str, shape: tuple, interval: Interval, functions: tuple[str, ...],
               zone_key: str, offset: int, per_sensor: bool) -> Select:
    """Built once per kind of question; executed with the filter's parameters."""
    zone = ZoneInfo(zone_key)
    if dialect == "postgresql":
        bucket = _pg_bucket(interval, zone, offset)
    elif interval.fixed:
        bucket = _sqlite_fixed_bucket(interval, offset)
    else:
        bucket = getattr(func, _SQLITE_BUCKET_FN)(readings.c.ts)
    where = sensor_ids_for(shape)
    value = readings.c.value
    inner_columns = [readings.c.sensor_id, bucket.label("bucket"), value.label("value")]
    partition = [readings.c.sensor_id, bucket] if per_sensor else [bucket]
    window = {"partition_by": partition, "order_by": readings.c.ts}
    if "first" in functions:
        inner_columns.append(func.first_value(value).over(**window).label("first_value"))
    if "last" in functions:
        inner_columns.append(func.last_value(value).over(**window, rows=(None, None))
                             .label("last_value"))
    inner = (select(*inner_columns)
             .where(readings.c.sensor_id.in_(where), *reading_clauses_for(shape))
             .subquery())
    aggregates = {
        "avg": func.avg(inner.c.value), "min": func.min(inner.c.value),
        "max": func.max(inner.c.value), "sum": func.sum(inner.c.value),
        "count": func.count(inner.c.value),
        "first": func.min(inner.c.first_value) if "first" in functions else None,
        "last": func.min(inner.c.last_value) if "last" in functions else None,
    }
    measures = [aggregates[name].label(name) for name in functions]
    group_by = [inner.c.sensor_id, inner.c.bucket] if per_sensor else [inner.c.bucket]
    # Group first, then join the few result rows to their sensors (not every reading).
    grouped = (select(*group_by, *measures).where(inner.c.bucket.is_not(None))
               .group_by(*group_by).subquery())
    bucket_out = type_coerce(grouped.c.bucket, ReadingTime()).label("bucket")
    values = [grouped.c[name] for name in functions]
    if per_sensor:
        query = (select(grouped.c.sensor_id, sensors.c.device_id, sensors.c.key, bucket_out,
                        *values)
                 .join_from(grouped, sensors, sensors.c.id == grouped.c.sensor_id)
                 .order_by(grouped.c.sensor_id, grouped.c.bucket))
    else:
        query = select(bucket_out, *values).order_by(grouped.c.bucket)
    query = query.limit(MAX_ROWS + 1)
    return query


def _row_out(row, functions: list[str], per_sensor: bool) -> dict:
    out = {"bucket": row["bucket"]}
    if per_sensor:
        out.update(sensor_id=row["sensor_id"], device_id=row["device_id"], key=row["key"])
    for name in functions:
        value = row[name]
        out[name] = int(value) if name == "count" else (None if value is None else float(value))
    return out


