"""The readings broadcast (telemetra.db.relay.readings): ``ReadingsCommitted`` published in A
reach B only for the organizations B asked for, over the database (PostgreSQL NOTIFY, the
SQLite table) and over a real ``redis-server``; nothing is built or sent while nobody asked.

Each "process" is an engine, a bus, a relay and a broadcast of its own on one database
(real processes: tests/db/test_readings_processes.py).
"""

import asyncio
import time
from collections.abc import Iterator

import pytest

from telemetra.db.engine import create_engine
from telemetra.db.relay import readings as readings_module
from telemetra.db.relay import relay_for
from telemetra.db.relay.readings import readings_broadcast
from telemetra.ingest.events import ReadingsCommitted
from telemetra.kit.events import EventBus
from tests.redis_server import RedisServer


@pytest.fixture(scope="module", params=["database", "redis"])
def redis_url(request, tmp_path_factory) -> Iterator[str]:
    if request.param == "database":
        yield ""
        return
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


def batch(rows: list[tuple[int, float]], tags=None) -> ReadingsCommitted:
    """Rows of (organization_id, value), one sensor per row."""
    n = len(rows)
    return ReadingsCommitted(tuple(range(1, n + 1)), (9,) * n, tuple(org for org, _ in rows),
                             tuple(1_767_268_800_000_000 + i for i in range(n)),
                             tuple(value for _, value in rows), (True,) * n,
                             tuple(tags or [None] * n))


class Process:
    def __init__(self, database_url: str, redis_url: str) -> None:
        self.engine = create_engine(database_url)
        self.bus = EventBus()
        self.received: list[ReadingsCommitted] = []
        self.relay = relay_for(self.engine, self.bus)
        self.broadcast = readings_broadcast(self.engine, self.relay, self.bus, redis_url)

    async def __aenter__(self) -> "Process":
        await self.relay.start()
        await self.broadcast.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.broadcast.stop()
        await self.relay.stop()
        await self.engine.dispose()

    def want(self, *organizations: int) -> None:
        if not self.received and not self.bus.wants(ReadingsCommitted):
            self.bus.subscribe(ReadingsCommitted, self.received.append)
        self.bus.set_interest(ReadingsCommitted, organizations)

    async def until(self, check, what: str, timeout: float = 3.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.01)

    def values(self) -> list[float]:
        return [v for b in self.received for v in b.values]


def test_readings_reach_only_the_processes_and_organizations_that_asked(database_url,
                                                                        redis_url):
    async def scenario():
        async with Process(database_url, redis_url) as a, \
                Process(database_url, redis_url) as b:
            wanted_before = a.bus.wants(ReadingsCommitted)
            b.want(7)
            await a.until(lambda: a.bus.wants(ReadingsCommitted), "A never heard B's interest")
            a.bus.publish([batch([(7, 1.0), (8, 2.0), (7, 3.0)])])
            a.bus.publish([batch([(8, 4.0)])])  # nothing B asked for
            a.bus.publish([batch([(7, 5.0)])])
            await b.until(lambda: 5.0 in b.values(), "B never received its readings")
            await asyncio.sleep(0.2)
            got = [(b_.organization_ids, b_.values) for b_ in b.received]
            b.want()  # B's sockets closed
            await a.until(lambda: not a.bus.wants(ReadingsCommitted), "A still sends")
            a.bus.publish([batch([(7, 6.0)])])
            await asyncio.sleep(0.3)
            return wanted_before, got, b.values(), a.broadcast.sent_rows

    wanted_before, got, values, sent = asyncio.run(scenario())
    assert wanted_before is False  # the writer builds nothing while nobody asked
    assert got == [((7, 7), (1.0, 3.0)), ((7,), (5.0,))]
    assert 6.0 not in values
    assert sent == 3


def test_a_large_batch_with_any_tags_arrives_whole(database_url, redis_url):
    rows = [(7, i + 0.5) for i in range(5_000)]
    tags = [("trop chaud", "é")] * 4_999 + [None]
    big = batch(rows, tags)

    async def scenario():
        async with Process(database_url, redis_url) as a, \
                Process(database_url, redis_url) as b:
            b.want(7)
            await a.until(lambda: a.bus.wants(ReadingsCommitted), "A never heard B's interest")
            a.bus.publish([big])
            await b.until(lambda: b.received, "the large batch never arrived")
            return b.received

    received = asyncio.run(scenario())
    assert len(readings_module.encode_rows(big)) > 10 * readings_module.PG_PART_BYTES
    assert received == [big]


def test_a_full_queue_drops_batches_and_counts_them(database_url, redis_url, monkeypatch):
    monkeypatch.setattr(readings_module, "QUEUE_BATCHES", 3)

    async def scenario():
        async with Process(database_url, redis_url) as a, \
                Process(database_url, redis_url) as b:
            b.want(7)
            await a.until(lambda: a.bus.wants(ReadingsCommitted), "A never heard B's interest")
            for i in range(10):  # faster than any transport: the sender gets no turn
                a.bus.publish([batch([(7, float(i))])])
            await b.until(lambda: len(b.received) == 3, "the queued batches never arrived")
            await asyncio.sleep(0.2)
            return a.broadcast.dropped, b.values()

    dropped, values = asyncio.run(scenario())
    assert dropped == 7
    assert values == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("redis_url", ["redis"], indirect=True)
def test_a_process_listens_on_redis_before_it_can_ask_for_readings(database_url, redis_url):
    """Once started, a process's channel has its subscriber: a peer that hears the process's
    interest and sends at once finds it listening (a race seen under load in the suite)."""
    import redis.asyncio as redis

    async def scenario():
        client = redis.Redis.from_url(redis_url)
        try:
            async with Process(database_url, redis_url) as a:
                channel = readings_module.RedisTransport.channel(a.relay.origin)
                return await client.pubsub_numsub(channel)
        finally:
            await client.aclose()

    assert asyncio.run(scenario())[0][1] == 1
