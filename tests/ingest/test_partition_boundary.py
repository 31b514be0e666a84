"""A reading the server timed, whose microsecond is taken, is stored a microsecond later: at
the last microsecond of a month that is the next month, whose partition (PostgreSQL) may not
exist yet. It is stored there all the same, on both databases and at both batch sizes."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from telemetra.db.types import to_micros
from telemetra.ingest.batches import Origin
from telemetra.ingest.partitions import partition_name
from telemetra.ingest.pgwrite import COPY_MIN_ROWS
from telemetra.ingest.writer import months_of
from tests.ingest.test_writer import _sensor, running_writer
from tests.ingest.test_writer_events import _origin, _stored

# Far from the months created ahead at start: nothing has made July's partition.
LAST = datetime(2091, 6, 30, 23, 59, 59, 999_999, tzinfo=UTC)


async def _partitions(engine) -> set[str]:
    if engine.dialect.name != "postgresql":
        return set()
    async with engine.connect() as conn:
        return set((await conn.execute(text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'readings'"))).scalars())


@pytest.mark.parametrize("size", [1, COPY_MIN_ROWS])
def test_a_server_timed_reading_moved_past_the_end_of_its_month_is_stored(database_url, size):
    async def run():
        async with running_writer(database_url) as (engine, writer):
            sensor = await _sensor(engine)
            timed, untimed = await _origin(engine, sensor), await _origin(engine, sensor, True)
            assert await writer.write([(sensor, LAST, 1.0, 0, None, None, timed)]) == 1
            assert partition_name(2091, 7) not in await _partitions(engine)
            earlier = [(sensor, LAST - timedelta(seconds=1 + i), float(i), 0, None, None, timed)
                       for i in range(size - 1)]
            request = [*earlier, (sensor, LAST, 2.0, 0, None, None, untimed)]
            assert await writer.write(request) == size  # none lost, none refused
            stored = await _stored(engine, sensor)
            async with engine.connect() as conn:
                july = await conn.scalar(text(
                    "SELECT value FROM readings WHERE sensor_id = :s AND ts >= :t"),
                    {"s": sensor, "t": datetime(2091, 7, 1, tzinfo=UTC)
                     if engine.dialect.name == "postgresql" else to_micros(LAST) + 1})
        assert stored[-2:] == [to_micros(LAST), to_micros(LAST) + 1]  # 2091-07-01T00:00:00Z
        assert len(stored) == size + 1
        assert july == 2.0

    asyncio.run(run())


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_the_month_after_a_server_timed_reading_exists_before_its_batch_is_written(
        database_url):
    async def run():
        async with running_writer(database_url) as (engine, writer):
            sensor = await _sensor(engine)
            untimed = await _origin(engine, sensor, True)
            december = datetime(2092, 12, 31, 12, tzinfo=UTC)
            assert await writer.write([(sensor, december, 1.0, 0, None, None, untimed)]) == 1
            names = await _partitions(engine)
        assert {partition_name(2092, 12), partition_name(2093, 1)} <= names

    asyncio.run(run())


def test_only_server_timed_rows_need_the_month_after_theirs():
    timed, untimed = Origin(1, 1), Origin(1, 1, server_timed=True)
    march, june = datetime(2030, 3, 31, tzinfo=UTC), datetime(2030, 6, 30, tzinfo=UTC)
    assert months_of([[(1, march, 0.0, 0, None, None, timed)],
                      [(1, june, 0.0, 0, None, None, untimed)]]) == {
        (2030, 3), (2030, 6), (2030, 7)}
