"""Statements run on the driver connection (``telemetra.db.direct``) answer exactly what
``conn.execute`` answers, on both databases, and fail as SQLAlchemy errors."""

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import DataError, DBAPIError

from telemetra.db.direct import DirectQuery
from telemetra.db.engine import create_engine
from telemetra.db.tables import readings, sensors
from telemetra.db.types import ReadingTime
from telemetra.readings import aggregate
from telemetra.readings.buckets import Interval
from telemetra.readings.query import ReadingFilter, _latest_statement
from tests.helpers import device_key

T = datetime(2026, 3, 28, 22, tzinfo=UTC)  # the night Europe/Brussels springs forward


@pytest.fixture
def stored(api, root):
    """A device with sensors t and h: readings every 20 minutes, some with tags and meta,
    the newest reading of t invalid (tagged "suspect")."""
    device = api.device(root)
    key = device_key(device["api_key"])
    for i in range(12):
        body = {"data": {"t": float(i), "h": 40.0 + i}, "metadata": {"n": i},
                "timestamp": (T + timedelta(minutes=20 * i)).isoformat()}
        assert api.post("/readings", key, json=body).status_code == 202
    body = {"readings": [{"key": "t", "value": 99.5, "tags": ["suspect", "x"],
                          "ts": (T + timedelta(hours=5)).isoformat()}]}
    assert api.post("/readings", key, json=body).status_code == 202
    return device


def both_ways(database_url, statement, params, prepare=None):
    """(rows from conn.execute, rows from DirectQuery) for one statement, twice each (the
    second direct run uses what the first learnt about the result's types)."""
    async def run():
        engine = create_engine(database_url)
        try:
            async with engine.connect() as conn:
                if prepare:
                    await prepare(conn)
                expected = [tuple(row) for row in (await conn.execute(statement, params))]
                query = DirectQuery(statement, conn.dialect)
                first = [tuple(row) for row in await query.fetch(conn, params)]
                again = [tuple(row) for row in await query.fetch(conn, params)]
                return expected, first, again
        finally:
            await engine.dispose()

    expected, first, again = asyncio.run(run())
    assert first == again
    return expected, first


def same_values(expected, got):
    assert got == expected
    for want, row in zip(expected, got):
        assert [type(v) for v in row] == [type(v) for v in want]
        assert [getattr(v, "tzinfo", None) for v in row] == [
            getattr(v, "tzinfo", None) for v in want]


@pytest.mark.parametrize("include_invalid", [False, True])
@pytest.mark.parametrize("keys", [[], ["t"], ["t", "h", "nope"]])
def test_latest_rows_are_the_same(database_url, stored, backend, include_invalid, keys):
    where = ReadingFilter(organization_id=stored["organization_id"],
                          device_id=stored["id"], keys=keys, include_invalid=include_invalid)
    expected, got = both_ways(database_url, _latest_statement(backend, where.shape),
                              {**where.params, "f_after": 0, "f_limit": 101})
    assert expected, "the case must select something"
    same_values(expected, got)
    tags = {row[0]: row[4] for row in got}
    assert (["suspect", "x"] in tags.values()) is include_invalid


@pytest.mark.parametrize("interval, functions, zone, per_sensor", [
    ("1h", ("avg", "count"), "UTC", True),
    ("30m", ("min", "max", "sum", "first", "last"), "Europe/Brussels", True),
    ("1d", ("avg", "first"), "Europe/Brussels", False),
    ("1w", ("count", "last"), "Asia/Kolkata", True),
])
@pytest.mark.parametrize("one_sensor", [False, True])
def test_aggregate_rows_are_the_same(database_url, stored, backend, interval, functions,
                                     zone, per_sensor, one_sensor):
    where = ReadingFilter(organization_id=stored["organization_id"], device_id=stored["id"],
                          start=T, end=T + timedelta(days=1), include_invalid=True)
    if one_sensor:
        where.sensor_id = asyncio.run(_sensor_id(database_url, stored["id"], "t"))
    parsed = Interval(int(interval[:-1]), interval[-1])
    statement = aggregate._statement(backend, where.shape, parsed, functions, zone, 0,
                                     per_sensor)

    async def register(conn):
        if backend == "sqlite" and not parsed.fixed:
            await aggregate._register_calendar(conn, parsed, ZoneInfo(zone))

    expected, got = both_ways(database_url, statement, where.params, register)
    assert expected, "the case must select something"
    same_values(expected, got)


async def _sensor_id(database_url, device_id, key):
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            return await conn.scalar(select(sensors.c.id).where(
                sensors.c.device_id == device_id, sensors.c.key == key))
    finally:
        await engine.dispose()


def test_parameters_go_through_their_types(database_url, stored, backend):
    """A datetime bound to ReadingTime is epoch microseconds on SQLite; an IN list expands."""
    statement = (select(readings.c.ts, func.count().label("n"))
                 .where(readings.c.ts >= bindparam("since", type_=ReadingTime()),
                        readings.c.sensor_id.in_(
                            select(sensors.c.id).where(sensors.c.key.in_(
                                bindparam("keys", expanding=True)))))
                 .group_by(readings.c.ts).order_by(readings.c.ts))
    params = {"since": T + timedelta(hours=3), "keys": ["t", "h"]}
    expected, got = both_ways(database_url, statement, params)
    assert [row[1] for row in got] == [2, 2, 2, 1]
    same_values(expected, got)


def test_driver_errors_are_sqlalchemy_errors(database_url, stored, backend):
    async def run(statement, params):
        engine = create_engine(database_url)
        try:
            async with engine.connect() as conn:
                await DirectQuery(statement, conn.dialect).fetch(conn, params)
        finally:
            await engine.dispose()

    with pytest.raises(DBAPIError):
        asyncio.run(run(select(func.no_such_function(readings.c.value)), {}))
    if backend == "postgresql":  # beyond int4: refused by the driver before it is sent
        with pytest.raises(DataError):
            asyncio.run(run(select(sensors.c.id).where(sensors.c.id == bindparam("id")),
                            {"id": 2**40}))


@pytest.mark.parametrize("path", ["/readings/latest", "/readings/aggregate"])
def test_out_of_range_ids_are_a_clean_422(api, root, stored, backend, path):
    """Beyond int4 on PostgreSQL, beyond 64 bits on SQLite: the request's fault, not a 500."""
    for huge in (2**40, 2**70):
        params = {"device_id": huge, **({"interval": "1h"} if "aggregate" in path else {})}
        response = api.get(path, root, params=params)
        if backend == "sqlite" and huge == 2**40:
            assert response.status_code == 200 and response.json()["items"] == []
        else:
            assert response.status_code == 422, response.text
