"""The group-commit writer: batches, per-request counts, and back-pressure on a full queue."""

import asyncio
import shutil
import sqlite3
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, text

from telemetra.db.engine import create_engine
from telemetra.db.tables import devices, organizations, sensors
from telemetra.ingest.batches import Origin
from telemetra.ingest.partitions import Partitions
from telemetra.ingest.pgwrite import COPY_MIN_ROWS
from telemetra.ingest.sqlitewrite import SqliteBatches
from telemetra.ingest.writer import Writer
from telemetra.kit.errors import Invalid, Unavailable
from tests.helpers import lock_readings

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def _sensor(engine, prefix: str = "tdk_writer1") -> int:
    async with engine.begin() as conn:
        org = await conn.scalar(insert(organizations).values(name=prefix, invalid_tags=[])
                                .returning(organizations.c.id))
        device = await conn.scalar(insert(devices).values(
            organization_id=org, name="d", api_key_prefix=prefix, api_key_hash="x")
            .returning(devices.c.id))
        return await conn.scalar(insert(sensors).values(
            organization_id=org, device_id=device, key="t").returning(sensors.c.id))


@asynccontextmanager
async def running_writer(database_url: str, **options):
    engine = create_engine(database_url)
    writer = Writer(engine, Partitions(engine), **options)
    await writer.start()
    try:
        yield engine, writer
    finally:
        await writer.stop()
        await engine.dispose()


ORIGIN = Origin(1, 1)  # the writer only carries it into its events (test_writer_events.py)


def rows(sensor_id: int, start: int, n: int):
    return [(sensor_id, T0 + timedelta(seconds=start + i), float(i), 0, None, None, ORIGIN)
            for i in range(n)]


def test_concurrent_writes_share_batches_and_get_their_own_counts(database_url):
    async def run():
        async with running_writer(database_url) as (engine, writer):
            sensor = await _sensor(engine)
            results = await asyncio.gather(*[writer.write(rows(sensor, 10 * i, 10))
                                             for i in range(20)])
            assert results == [10] * 20
            assert writer.batches < 20  # gathered: fewer commits than requests
            again = await asyncio.gather(writer.write(rows(sensor, 0, 15)),
                                         writer.write(rows(sensor, 500, 5)))
            assert again == [0, 5]  # the first were all duplicates

    asyncio.run(run())


@pytest.mark.parametrize("size", [1, COPY_MIN_ROWS])
def test_a_key_repeated_within_one_request_counts_as_new_once(database_url, size):
    # An MQTT batch joins several messages into one request: a message delivered three times
    # is one new reading and two duplicates, at either batch size.
    async def run():
        async with running_writer(database_url) as (engine, writer):
            sensor = await _sensor(engine)
            request = rows(sensor, 0, size) + rows(sensor, 0, 1) * 2
            assert await writer.write(request) == size
            assert await writer.write(request) == 0
            async with engine.connect() as conn:
                assert await conn.scalar(text("SELECT count(*) FROM readings")) == size
    asyncio.run(run())


@pytest.mark.parametrize("size", [1, COPY_MIN_ROWS])
def test_a_request_whose_sensor_was_deleted_fails_alone(database_url, size):
    """A sensor deleted while its readings wait in the queue: that request is refused (422),
    the others of its batch are stored."""
    async def run():
        async with running_writer(database_url) as (engine, writer):
            sensor = await _sensor(engine)
            results = await asyncio.gather(
                writer.write(rows(sensor, 0, size)), writer.write(rows(sensor + 999, 0, size)),
                writer.write(rows(sensor, size, size)), return_exceptions=True)
            assert results[0] == results[2] == size
            assert isinstance(results[1], Invalid) and "deleted" in results[1].detail
            async with engine.connect() as conn:
                assert await conn.scalar(text("SELECT count(*) FROM readings")) == 2 * size

    asyncio.run(run())


async def _readings_per_sensor(engine) -> dict[int, int]:
    async with engine.connect() as conn:
        return dict((await conn.execute(text(
            "SELECT sensor_id, count(*) FROM readings GROUP BY sensor_id"))).all())


@pytest.mark.parametrize("deleted", ["sensors", "devices", "organizations"])
def test_deleting_sensors_however_they_go_deletes_their_readings(database_url, deleted):
    """On PostgreSQL a trigger does it (no foreign key there), on SQLite the foreign key."""
    async def run():
        async with running_writer(database_url) as (engine, writer):
            sensor, other = await _sensor(engine), await _sensor(engine, "tdk_writer2")
            await writer.write(rows(sensor, 0, COPY_MIN_ROWS))
            await writer.write(rows(sensor, 10_000, 3))
            await writer.write(rows(other, 0, 5))
            async with engine.begin() as conn:
                owner = (await conn.execute(select(sensors.c.device_id, sensors.c.organization_id)
                                            .where(sensors.c.id == sensor))).one()
                key = {"sensors": sensor, "devices": owner[0], "organizations": owner[1]}
                await conn.execute(text(f"DELETE FROM {deleted} WHERE id = :id"),
                                   {"id": key[deleted]})
            assert await _readings_per_sensor(engine) == {other: 5}

    asyncio.run(run())


@pytest.mark.parametrize("size", [1, COPY_MIN_ROWS])
def test_readings_written_while_their_sensor_is_deleted_are_refused_not_orphaned(
        database_url, size):
    """The writer waits for the deleting transaction, then refuses the rows: nothing of the
    deleted sensor is left behind."""
    async def run():
        async with running_writer(database_url) as (engine, writer):
            sensor = await _sensor(engine)
            deleting = await engine.connect()
            if engine.dialect.name == "sqlite":
                deleting = await deleting.execution_options(sqlite_write=True)
            await deleting.begin()
            await deleting.execute(text("DELETE FROM sensors WHERE id = :id"), {"id": sensor})
            pending = asyncio.create_task(writer.write(rows(sensor, 0, size)))
            await asyncio.sleep(0.5)
            assert not pending.done()  # waiting for the delete to end
            await deleting.commit()
            await deleting.close()
            with pytest.raises(Invalid, match="deleted"):
                await pending
            assert await _readings_per_sensor(engine) == {}

    asyncio.run(run())


def test_large_batches_keep_counts_duplicates_tags_and_latest_values(database_url):
    """Batches past COPY_MIN_ROWS take PostgreSQL's COPY path: same results as small ones."""
    async def run():
        async with running_writer(database_url) as (engine, writer):
            sensor = await _sensor(engine)
            big = COPY_MIN_ROWS * 3
            tagged = [(s, ts, v, f, ["suspect"] if i % 2 else None, {"n": i} if i % 3 else None,
                       origin)
                      for i, (s, ts, v, f, _, _, origin) in enumerate(rows(sensor, 0, big))]
            assert await writer.write(tagged) == big
            # Half old, half new, in two concurrent requests: each gets its own new count.
            results = await asyncio.gather(writer.write(rows(sensor, big // 2, big)),
                                           writer.write(rows(sensor, 5 * big, big)))
            assert results == [big // 2, big]
            async with engine.connect() as conn:
                count = await conn.scalar(text("SELECT count(*) FROM readings"))
                tags = await conn.scalar(text(
                    "SELECT count(*) FROM readings WHERE tags IS NOT NULL"))
                last = (await conn.execute(text(
                    "SELECT last_value FROM sensors WHERE id = :id"), {"id": sensor})).scalar()
            assert count == big + big // 2 + big
            assert tags == big // 2
            assert last == float(big - 1)  # the newest reading's value (rows(5 * big, big))

    asyncio.run(run())


def test_writers_of_two_processes_take_turns_on_one_sqlite_file(tmp_path, sqlite_template):
    """Two writers on one file (as two worker processes have) take turns through a file
    lock: every write lands once, none fails on the busy database."""
    path = tmp_path / "shared.db"
    shutil.copy(sqlite_template, path)

    async def run():
        async with running_writer(f"sqlite:///{path}") as (engine, first), \
                running_writer(f"sqlite:///{path}") as (_, second):
            sensor = await _sensor(engine)
            results = await asyncio.gather(*[
                (first if i % 2 else second).write(rows(sensor, 10 * i, 10)) for i in range(60)])
            assert results == [10] * 60
            async with engine.connect() as conn:
                assert await conn.scalar(text("SELECT count(*) FROM readings")) == 600
        assert (tmp_path / "shared.db.writer-lock").exists()

    asyncio.run(run())


def test_a_writer_waiting_for_the_turn_gets_it_before_the_one_that_just_wrote(tmp_path):
    """Two workers' writers on one SQLite file: the one that has just written does not take
    the turn straight back while the other waits (measured with two busy workers, it did, and
    the other's requests waited up to a second)."""
    path = str(tmp_path / "shared.db")
    sqlite3.connect(path).close()

    async def run():
        first, second = SqliteBatches(path), SqliteBatches(path)
        order = []

        async def wait_then_write():
            await second.take_turn()
            order.append("second")
            await asyncio.sleep(0.05)
            second.end_turn()

        try:
            await first.take_turn()
            waiting = asyncio.create_task(wait_then_write())
            await asyncio.sleep(0.2)
            assert order == []  # the second waits while the first writes
            first.end_turn()
            await first.take_turn()  # at once, before the second's thread can run
            order.append("first")
            first.end_turn()
            await waiting
            assert order == ["second", "first"]
        finally:
            await first.close()
            await second.close()

    asyncio.run(run())


def test_a_full_queue_answers_unavailable_instead_of_growing(database_url):
    async def run():
        engine = create_engine(database_url)
        writer = Writer(engine, Partitions(engine), max_pending_rows=8, timeout_seconds=20)
        await writer.start()
        blocker = await engine.connect()
        try:
            sensor = await _sensor(engine)
            await writer.write(rows(sensor, 0, 1))  # partitions and connections warm
            # Another connection holds the write lock: the writer's next batch waits.
            blocker = await lock_readings(blocker)
            first = asyncio.create_task(writer.write(rows(sensor, 100, 6)))
            await asyncio.sleep(0.3)
            assert writer.queue_depth == 6
            with pytest.raises(Unavailable) as refused:
                await writer.write(rows(sensor, 200, 6))
            assert refused.value.status == 503
            assert refused.value.headers["Retry-After"] == "1"
            await blocker.rollback()  # the database frees up: the waiting write completes
            assert await first == 6
            assert writer.queue_depth == 0
            assert await writer.write(rows(sensor, 200, 6)) == 6
        finally:
            await blocker.close()
            await writer.stop()
            await engine.dispose()

    asyncio.run(run())


def _deep(levels: int) -> dict:
    meta: dict = {}
    for _ in range(levels - 1):
        meta = {"a": meta}
    return meta


def _poisoned(backend: str, sensor_id: int, size: int) -> list:
    """Rows built past the decoder that this backend's database (or the encoding on the way to
    it) refuses."""
    good = rows(sensor_id, 50_000, size)
    if backend == "postgresql":
        return {"year 9999": [(sensor_id, datetime(9999, 12, 31, tzinfo=UTC), 1.0, 0, None,
                               None, ORIGIN)] + good,
                "NUL in a tag": good + [(sensor_id, T0, 1.0, 0, ["a\u0000b"], None, ORIGIN)],
                "600-deep meta": good[:-1] + [(*good[-1][:5], _deep(600), ORIGIN)]}
    return {"600-deep meta": good[:-1] + [(*good[-1][:5], _deep(600), ORIGIN)],
            "lone surrogate in a tag": good + [(sensor_id, T0, 1.0, 0, ["\ud800"], None, ORIGIN)]}


@pytest.mark.parametrize("size", [1, COPY_MIN_ROWS])
def test_a_request_the_database_refuses_fails_alone_and_its_neighbours_commit(
        database_url, backend, size):
    """Issue 9: one tenant's refused rows failed the whole group commit with 503 "database
    unavailable", other tenants included. Now the refused request alone gets a 422 saying why;
    the requests sharing its batch are stored."""
    async def run():
        async with running_writer(database_url) as (engine, writer):
            sensor, other = await _sensor(engine), await _sensor(engine, "tdk_writer2")
            for name, poison in _poisoned(backend, sensor, size).items():
                async with engine.begin() as conn:
                    await conn.execute(text("DELETE FROM readings"))
                batches = writer.batches
                results = await asyncio.gather(
                    writer.write(rows(other, 0, size)), writer.write(poison),
                    *[writer.write(rows(other, 1000 * i, size)) for i in range(1, 6)],
                    return_exceptions=True)
                assert results[:1] + results[2:] == [size] * 6, (name, results)
                refused = results[1]
                assert isinstance(refused, Invalid), (name, refused)
                assert refused.status == 422 and "refused" in refused.detail, refused.detail
                assert await _readings_per_sensor(engine) == {other: 6 * size}, name
                assert writer.batches > batches
            assert await writer.write(rows(sensor, 90_000, size)) == size  # still writing

    asyncio.run(run())
