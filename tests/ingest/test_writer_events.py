"""What the writer knows of its new rows: published after commit as ``ReadingsCommitted``;
rows the server timed are never lost to a taken microsecond; two writers never fail each
other (deadlocks on the sensors' latest values)."""

import asyncio
from datetime import timedelta

import orjson
import pytest
from sqlalchemy import insert, select, text

from telemetra.db.tables import sensors
from telemetra.db.types import to_micros
from telemetra.ingest.batches import Origin
from telemetra.ingest.events import ReadingsCommitted
from telemetra.ingest.pgwrite import COPY_MIN_ROWS
from telemetra.kit.events import EventBus, from_message, to_message
from telemetra.readings.flags import INVALID
from tests.ingest.test_writer import T0, _sensor, rows, running_writer

US = timedelta(microseconds=1)


async def _origin(engine, sensor_id: int, server_timed: bool = False) -> Origin:
    async with engine.connect() as conn:
        owner = (await conn.execute(select(sensors.c.device_id, sensors.c.organization_id)
                                    .where(sensors.c.id == sensor_id))).one()
    return Origin(owner.device_id, owner.organization_id, server_timed)


async def _stored(engine, sensor_id: int) -> list:
    async with engine.connect() as conn:
        found = (await conn.execute(text("SELECT ts FROM readings WHERE sensor_id = :s "
                                         "ORDER BY ts"), {"s": sensor_id})).scalars()
        # PostgreSQL answers datetimes, SQLite the microseconds it stores.
        return [ts if isinstance(ts, int) else to_micros(ts) for ts in found]


def test_a_committed_batch_is_published_with_its_new_rows_before_its_callers_are_answered(
        database_url):
    async def run():
        bus = EventBus()
        async with running_writer(database_url, events=bus) as (engine, writer):
            sensor = await _sensor(engine)
            origin = await _origin(engine, sensor)
            seen, answered_before, visible = [], [], []
            calls: list[asyncio.Task] = []

            def inline(event):
                seen.append(event)
                answered_before.append([task.done() for task in calls])

            async def queued(event):  # runs on its own task: the rows must be committed
                async with engine.connect() as conn:
                    visible.append(await conn.scalar(text("SELECT count(*) FROM readings")))

            bus.subscribe(ReadingsCommitted, inline)
            bus.subscribe(ReadingsCommitted, queued)
            first = [(sensor, T0, 1.5, 0, None, None, origin),
                     (sensor, T0 + US, 99.0, INVALID, ["suspect"], {"m": 1}, origin)]
            calls.append(asyncio.create_task(writer.write(first)))
            assert await calls[0] == 2
            # Two new rows among duplicates: only the new ones are published.
            again = first + [(sensor, T0 + 2 * US, 2.5, 0, None, None, origin)]
            calls.append(asyncio.create_task(writer.write(again)))
            assert await calls[1] == 1
            assert await writer.write(first) == 0  # nothing new: nothing to publish
            await bus.stop()

        device, org = origin.device_id, origin.organization_id
        assert [event.rows for event in seen] == [
            ((sensor, device, org, to_micros(T0), 1.5, True, None),
             (sensor, device, org, to_micros(T0 + US), 99.0, False, ("suspect",))),
            ((sensor, device, org, to_micros(T0 + 2 * US), 2.5, True, None),),
        ]
        assert answered_before == [[False], [True, False]]  # published, then answered
        assert visible[0] >= 2 and visible[1] == 3  # committed when published
        assert from_message(orjson.loads(orjson.dumps(to_message(seen[0])))) == seen[0]

    asyncio.run(run())


@pytest.mark.parametrize("size", [1, COPY_MIN_ROWS])
def test_a_server_timed_row_whose_microsecond_is_taken_is_stored_at_the_next_free_one(
        database_url, size):
    """Readings sent without a time got the same microsecond as another of their sensor's
    (another process's, or one of the same request): they were answered as duplicates and
    lost. A reading the server timed is never a re-send. Readings sent with their time still
    are duplicates when their key is taken. At both batch sizes (PostgreSQL's two paths)."""
    async def run():
        bus = EventBus()
        seen = []
        bus.subscribe(ReadingsCommitted, seen.append)
        async with running_writer(database_url, events=bus) as (engine, writer):
            sensor = await _sensor(engine)
            timed, untimed = await _origin(engine, sensor), await _origin(engine, sensor, True)
            assert await writer.write([(sensor, T0, 0.0, 0, None, None, timed),
                                       (sensor, T0 + US, 1.0, 0, None, None, timed)]) == 2
            earlier = [(*row[:6], timed) for row in rows(sensor, -10_000, size - 1)]
            request = earlier + [(sensor, T0, 10.0 + i, 0, None, None, untimed)
                                 for i in range(3)]
            request.append((sensor, T0 + US, 5.0, 0, None, None, timed))  # a re-send
            seen.clear()
            assert await writer.write(request) == len(request) - 1
            stored = await _stored(engine, sensor)
            async with engine.connect() as conn:
                last_value = await conn.scalar(
                    select(sensors.c.last_value).where(sensors.c.id == sensor))
        base = to_micros(T0)
        assert stored[-5:] == [base, base + 1, base + 2, base + 3, base + 4]
        assert len(stored) == 2 + len(request) - 1
        assert last_value == 12.0  # the newest: the third server-timed row, at T0 + 4 µs
        published = [row for event in seen for row in event.rows]
        assert [(r[3], r[4]) for r in published[-3:]] == [
            (base + 2, 10.0), (base + 3, 11.0), (base + 4, 12.0)]
        assert len(published) == len(request) - 1

    asyncio.run(run())


async def _sensors(engine, n: int, others: int = 3000) -> list[int]:
    """``n`` sensors of one device, among as many ``others`` (the fleet's: with them the
    latest values' update visits the sensors in the order it is given them)."""
    first = await _sensor(engine, "tdk_opposite")
    async with engine.begin() as conn:
        owner = (await conn.execute(select(sensors.c.device_id, sensors.c.organization_id)
                                    .where(sensors.c.id == first))).one()
        more = (await conn.execute(insert(sensors).values([
            {"organization_id": owner.organization_id, "device_id": owner.device_id,
             "key": f"k{i}"} for i in range(n - 1 + others)]).returning(sensors.c.id))).scalars()
        return [first, *list(more)[:n - 1]]


@pytest.mark.parametrize("per_sensor", [1, 2])
def test_two_writers_writing_the_same_sensors_in_opposite_orders_never_fail(
        database_url, per_sensor):
    """Two processes' writers (two engines here) moving the latest values of the same
    sensors in opposite orders: a soak logged PostgreSQL deadlocks, answered 503. Every write
    must succeed and every row be stored. On SQLite the writers take turns."""
    n_sensors, requests = 200, 30  # 200 rows a request: the small path; 400: COPY

    async def run():
        async with running_writer(database_url) as (engine, first), \
                running_writer(database_url) as (_, second):
            ids = await _sensors(engine, n_sensors)
            origin = Origin(1, 1)

            def request(writer_index: int, number: int) -> list:
                order = ids if writer_index == 0 else ids[::-1]
                out = []
                for k in range(per_sensor):
                    ts = T0 + timedelta(seconds=(number * per_sensor + k) * 2 + writer_index)
                    out += [(sensor, ts, float(number), 0, None, None, origin)
                            for sensor in order]
                return out

            results, failures = [], []

            async def load(writer_index: int, writer) -> None:
                for number in range(requests):  # one batch each: many transactions meet
                    try:
                        results.append(await writer.write(request(writer_index, number)))
                    except Exception as exc:
                        failures.append(exc)

            await asyncio.gather(load(0, first), load(1, second))
            assert failures == [], failures[:3]
            assert results == [n_sensors * per_sensor] * (2 * requests)
            async with engine.connect() as conn:
                assert await conn.scalar(text("SELECT count(*) FROM readings")) == (
                    2 * requests * n_sensors * per_sensor)

    asyncio.run(run())


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.parametrize("size", [1, COPY_MIN_ROWS])
def test_a_deadlock_is_retried_not_answered_unavailable(database_url, size):
    """Another transaction takes the batch's two sensors in the opposite order: PostgreSQL
    ends the cycle by failing one side. When that is the writer's batch, it is tried again
    (once the other side is done), and the write succeeds."""
    async def run():
        async with running_writer(database_url) as (engine, writer):
            low, high = sorted(await _sensors(engine, 2, others=0))
            other = await engine.connect()
            try:
                await other.begin()
                await other.execute(text("UPDATE sensors SET last_value = 1 WHERE id = :i"),
                                    {"i": high})
                request = [(*row[:6], Origin(1, 1)) for row in rows(low, 0, size)]
                request += [(*row[:6], Origin(1, 1)) for row in rows(high, 0, size)]
                pending = asyncio.create_task(writer.write(request))
                await asyncio.sleep(0.3)  # the batch holds ``low`` and waits for ``high``
                assert not pending.done()
                try:
                    await other.execute(text("UPDATE sensors SET last_value = 1 "
                                             "WHERE id = :i"), {"i": low})
                    await other.commit()
                except Exception as exc:  # this side was chosen to fail: the batch goes on
                    assert "deadlock" in str(exc)
                    await other.rollback()
                assert await asyncio.wait_for(pending, 20) == 2 * size
            finally:
                await other.close()
            async with engine.connect() as conn:
                assert await conn.scalar(text("SELECT count(*) FROM readings")) == 2 * size

    asyncio.run(run())
