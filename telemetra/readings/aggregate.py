"""Windowed aggregation: one row per sensor and bucket; empty buckets are absent.

PostgreSQL computes buckets in SQL (``date_bin`` and ``AT TIME ZONE``). SQLite has no time
zone data: fixed widths are integer arithmetic on epoch microseconds, calendar buckets come
from a function registered on the connection (local midnights, with their 23- and 25-hour
days), worked out for the readings it meets.

Bounded work: a range (``start`` and ``end`` given) may span at most ``MAX_BUCKETS`` buckets,
counted before any query; whatever the range, the database makes buckets only where readings
are, the answer has at most ``MAX_ROWS`` rows, and the query has the request's time limit.
"""

import asyncio
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    Integer,
    Select,
    bindparam,
    func,
    literal,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from telemetra.db.direct import direct_query
from telemetra.db.tables import readings, sensors
from telemetra.db.types import ReadingTime
from telemetra.kit.errors import Invalid
from telemetra.readings.buckets import (
    CalendarBuckets,
    Interval,
    bucket_count,
    fixed_offset_seconds,
)
from telemetra.readings.query import (
    ReadingFilter,
    reading_clauses_for,
    sensor_clauses_for,
    sensor_ids_for,
)

FUNCTIONS = ("avg", "min", "max", "sum", "count", "first", "last")
MAX_ROWS = 100_000
MAX_BUCKETS = 100_000
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
    if not shift:  # UTC and the like: two operations less per reading
        return (micros // width) * width
    return ((micros - shift) // width) * width + shift


async def _register_calendar(conn: AsyncConnection, interval: Interval, zone: ZoneInfo) -> None:
    """Give SQLite this query's calendar bucket function."""
    raw = await conn.get_raw_connection()
    await raw.driver_connection.create_function(_SQLITE_BUCKET_FN, 1,
                                                CalendarBuckets(interval, zone),
                                                deterministic=True)


def check_buckets(where: ReadingFilter, interval: Interval, zone: ZoneInfo,
                  offset: int) -> None:
    """Refuse a range of more than MAX_BUCKETS buckets, before any work is done."""
    if where.start is None or where.end is None:
        return  # open: only buckets holding readings are made, at most MAX_ROWS rows
    count = bucket_count(where.start, where.end, interval, zone, offset)
    if count > MAX_BUCKETS:
        raise Invalid(f"interval: {interval} buckets from start to end would be {count:,}, "
                      f"more than the limit of {MAX_BUCKETS:,}: narrow the range or widen the "
                      "interval", loc=["query", "interval"], limit=MAX_BUCKETS, buckets=count)


async def aggregate(conn: AsyncConnection, where: ReadingFilter, interval: Interval,
                    functions: list[str], zone: ZoneInfo, *, per_sensor: bool = True
                    ) -> list[dict]:
    """Rows per sensor and bucket; with ``per_sensor=False`` one series across all the
    selected sensors (rows per bucket only)."""
    where.check_range()
    offset = fixed_offset_seconds(zone, where.start or datetime.now(UTC))
    check_buckets(where, interval, zone, offset)
    dialect = conn.dialect.name
    if dialect == "sqlite" and not interval.fixed:
        await _register_calendar(conn, interval, zone)
    statement = _statement(dialect, where.shape, interval, tuple(functions), zone.key, offset,
                           per_sensor)
    rows = await direct_query(statement, conn.dialect).fetch(conn, where.params)
    if len(rows) > MAX_ROWS:
        raise Invalid(f"the answer would have more than the limit of {MAX_ROWS:,} rows (sensors "
                      "times buckets): narrow the range, select fewer sensors or widen the "
                      "interval", loc=["query", "interval"], limit=MAX_ROWS)
    if len(rows) < 1000:
        return _rows_out(rows, functions, per_sensor)
    # Up to MAX_ROWS rows are a second of Python: in a thread, so the event loop goes on.
    return await asyncio.to_thread(_rows_out, rows, functions, per_sensor)


@lru_cache(maxsize=512)
def _statement(dialect: str, shape: tuple, interval: Interval, functions: tuple[str, ...],
               zone_key: str, offset: int, per_sensor: bool) -> Select:
    """Built once per kind of question; executed with the filter's parameters. Columns:
    sensor_id, device_id and key (per sensor only), bucket, then one per function."""
    zone = ZoneInfo(zone_key)
    where = list(reading_clauses_for(shape))
    if dialect == "postgresql":
        bucket = _pg_bucket(interval, zone, offset)
    elif interval.fixed:
        bucket = _sqlite_fixed_bucket(interval, offset)
    else:
        bucket = getattr(func, _SQLITE_BUCKET_FN)(readings.c.ts)
    # One sensor (sensor_id given): its readings grouped by bucket alone, labelled after.
    one_sensor = per_sensor and shape[0]
    if per_sensor and not one_sensor:
        # From the sensors the filters name, each with its own index range of readings;
        # device_id and key depend on the sensor's id, which is grouped by.
        keys = [sensors.c.id.label("sensor_id"), sensors.c.device_id, sensors.c.key]
        source = sensors.join(readings, readings.c.sensor_id == sensors.c.id)
        where += sensor_clauses_for(shape)
        group_by = [sensors.c.id, bucket]
    else:
        keys, source, group_by = [], readings, [bucket]
        where.append(readings.c.sensor_id.in_(sensor_ids_for(shape)))
    value, windows = readings.c.value, {}
    if "first" in functions or "last" in functions:
        # Window functions, computed per reading in a subquery that is then grouped.
        window = {"partition_by": [readings.c.sensor_id, bucket] if keys else [bucket],
                  "order_by": readings.c.ts}
        if "first" in functions:
            windows["first"] = func.first_value(value).over(**window)
        if "last" in functions:
            windows["last"] = func.last_value(value).over(**window, rows=(None, None))
        inner = (select(*keys, bucket.label("bucket"), value.label("value"),
                        *[column.label(f"{name}_value") for name, column in windows.items()])
                 .select_from(source).where(*where).subquery())
        keys = [inner.c[key.key] for key in keys]
        bucket, value = inner.c.bucket, inner.c.value
        windows = {name: inner.c[f"{name}_value"] for name in windows}
        source, where, group_by = inner, [], [*keys, bucket]
    aggregates = {"avg": func.avg, "min": func.min, "max": func.max, "sum": func.sum,
                  "count": func.count}
    measures = [(func.min(windows[name]) if name in windows else aggregates[name](value))
                .label(name) for name in functions]
    group_by[-1] = "bucket"  # by its label: SQLite would compute a repeated expression again
    query = (select(*keys, type_coerce(bucket, ReadingTime()).label("bucket"), *measures)
             .select_from(source).where(*where).group_by(*group_by))
    if one_sensor:
        grouped = query.subquery()
        query = (select(sensors.c.id.label("sensor_id"), sensors.c.device_id, sensors.c.key,
                        grouped.c.bucket, *[grouped.c[name] for name in functions])
                 .join_from(grouped, sensors, sensors.c.id == bindparam("f_sensor")))
    return query.order_by(*keys[:1], "bucket").limit(MAX_ROWS + 1)


def _rows_out(rows: list, functions: list[str], per_sensor: bool) -> list[dict]:
    start = 4 if per_sensor else 1
    measures = [(index, name, int if name == "count" else float)
                for index, name in enumerate(functions, start)]
    out = []
    for row in rows:
        item = ({"bucket": row[3], "sensor_id": row[0], "device_id": row[1], "key": row[2]}
                if per_sensor else {"bucket": row[0]})
        for index, name, cast in measures:
            value = row[index]
            item[name] = None if value is None else cast(value)
        out.append(item)
    return out
