"""The relay (telemetra.db.relay): a unit of work's events reach the other processes sharing the
database when, and only if, it commits; on SQLite and PostgreSQL.

Each "process" here is an engine, a bus and a relay of its own on one database, as two
``telemetra serve`` processes have (tests/system/test_relay_processes.py runs those).
"""

import asyncio
import time
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select, text, update

from telemetra.db import relay as relay_module
from telemetra.db.engine import create_engine
from telemetra.db.relay import CachesStale, relay_for
from telemetra.db.relay import base as relay_base
from telemetra.db.relay import postgres as relay_pg
from telemetra.db.relay import sqlite as relay_sqlite
from telemetra.db.tables import relayed_events
from telemetra.kit.db import write_transaction
from telemetra.kit.events import EventBus, event, record


@event("test.relay_changed")
@dataclass(frozen=True, slots=True)
class Changed:
    thing_id: int
    keys: tuple[str, ...] = ()


@event("test.relay_secret")
@dataclass(frozen=True, slots=True)
class Secret:
    local_only = True
    value: str = ""


class Process:
    """One process's engine, bus (recording what its subscribers get) and relay."""

    def __init__(self, database_url: str) -> None:
        self.engine = create_engine(database_url)
        self.bus = EventBus()
        self.seen: list = []
        for kind in (Changed, Secret, CachesStale):
            self.bus.subscribe(kind, self.seen.append)
        self.relay = relay_for(self.engine, self.bus)

    async def __aenter__(self) -> "Process":
        await self.relay.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.relay.stop()
        await self.engine.dispose()

    async def commit(self, *events) -> None:
        async with write_transaction(self.engine, self.bus) as conn:
            record(conn, *events)

    async def wait_for(self, item, timeout: float = 2.0) -> float:
        """Seconds until ``item`` reached this process's subscribers."""
        started = time.monotonic()
        while item not in self.seen:
            if time.monotonic() - started > timeout:
                raise AssertionError(f"{item} never arrived; seen {self.seen}")
            await asyncio.sleep(0.005)
        return time.monotonic() - started


def run(coroutine):
    return asyncio.run(coroutine)


def test_committed_events_reach_the_other_process_once_and_rolled_back_ones_never(
        database_url):
    async def scenario():
        async with Process(database_url) as a, Process(database_url) as b:
            with pytest.raises(RuntimeError):
                async with write_transaction(a.engine, a.bus) as conn:
                    record(conn, Changed(1))
                    raise RuntimeError("rolled back")
            await a.commit(Changed(2, ("x",)), Changed(3))
            delay = await b.wait_for(Changed(3))
            await a.commit(Changed(4))
            await b.wait_for(Changed(4))
            await asyncio.sleep(0.15)  # time for a stray copy to arrive
            return a.seen, b.seen, delay

    a_seen, b_seen, delay = run(scenario())
    print(f"relay delay {delay * 1000:.1f} ms")
    assert b_seen == [Changed(2, ("x",)), Changed(3), Changed(4)]
    assert a_seen == b_seen  # its own, published once after the commit, not again by relay
    assert delay < 1.0


def test_local_only_events_never_leave_the_process(database_url):
    async def scenario():
        async with Process(database_url) as a, Process(database_url) as b:
            await a.commit(Secret("tdk_very-secret"), Changed(5))
            await b.wait_for(Changed(5))
            await a.commit(Secret("tdk_alone"))  # nothing to relay: nothing written
            await a.commit(Changed(6))
            await b.wait_for(Changed(6))
            stored = []
            if a.engine.dialect.name == "sqlite":
                async with a.engine.connect() as conn:
                    stored = (await conn.execute(select(relayed_events.c.messages))).scalars()
                    stored = list(stored)
            return a.seen, b.seen, stored

    a_seen, b_seen, stored = run(scenario())
    assert Secret("tdk_very-secret") in a_seen
    assert b_seen == [Changed(5), Changed(6)]
    assert not any("tdk_" in row for row in stored)
    if stored:
        assert len(stored) == 2


def test_large_units_arrive_whole_and_oversized_ones_as_stale(database_url, monkeypatch):
    # Over PostgreSQL's 8,000-byte notification: sent in parts, put together again.
    big = Changed(7, tuple(f"sensor-{i:05d}-é" for i in range(2000)))

    async def scenario():
        async with Process(database_url) as a, Process(database_url) as b:
            await a.commit(big, Changed(8))
            await b.wait_for(Changed(8))
            monkeypatch.setattr(relay_base, "MAX_UNIT_BYTES", 20_000)
            await a.commit(big)
            await b.wait_for(CachesStale("a unit of work's events were too large"))
            await a.commit(Changed(9))
            await b.wait_for(Changed(9))
            return b.seen

    seen = run(scenario())
    assert len(relay_module.encode([big])) > 3 * relay_pg.PG_PART_BYTES
    assert seen[:2] == [big, Changed(8)]
    assert [type(x) for x in seen] == [Changed, Changed, CachesStale, Changed]


def test_events_from_before_a_process_started_are_not_replayed(database_url):
    async def scenario():
        async with Process(database_url) as a:
            await a.commit(Changed(10))
            async with Process(database_url) as b:
                await a.commit(Changed(11))
                await b.wait_for(Changed(11))
                return b.seen

    assert run(scenario()) == [Changed(11)]


def test_a_relay_stops_even_when_a_heartbeat_was_asked_for_at_that_moment(database_url):
    # Python 3.11's asyncio.wait_for swallows a cancellation that meets its awaitable's
    # completion: a newcomer's heartbeat landing as the process stopped kept the relay's
    # heartbeat loop alive for ever, and shutdown hung (seen once in CI, 300 s).
    async def scenario():
        async with Process(database_url) as a:
            for _ in range(3):
                await asyncio.sleep(0.3)  # its heartbeat sent, waiting for the next
                a.relay._beat_now.set()
                async with asyncio.timeout(5):
                    await a.relay.stop()
                await a.relay.start()

    run(scenario())


def test_an_event_this_process_cannot_read_makes_its_caches_stale(database_url):
    unknown = '[{"event":"from.a.newer.version","data":{}}]'

    async def scenario():
        async with Process(database_url) as b:
            async with b.engine.begin() as conn:
                if b.engine.dialect.name == "sqlite":
                    await conn.execute(relayed_events.insert().values(origin="other",
                                                                      messages=unknown))
                else:
                    await conn.execute(text("SELECT pg_notify(:c, :p)"),
                                       {"c": relay_pg.CHANNEL,
                                        "p": f"other 0 0 1 {unknown}"})
            started = time.monotonic()
            while not b.seen and time.monotonic() - started < 2:
                await asyncio.sleep(0.01)
            return b.seen

    seen = run(scenario())
    assert len(seen) == 1 and isinstance(seen[0], CachesStale)
    assert "undecodable" in seen[0].reason


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # its own transport
def test_postgresql_listener_reconnects_and_caches_are_told_to_forget(database_url,
                                                                      monkeypatch):
    monkeypatch.setattr(relay_pg, "BACKOFF_SECONDS", (0.05, 0.2))

    async def scenario():
        async with Process(database_url) as a, Process(database_url) as b:
            pid = b.relay._conn.get_server_pid()
            async with a.engine.begin() as conn:
                await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            stale = CachesStale("the events listener reconnected")
            await b.wait_for(stale, timeout=5)
            assert b.relay._conn.get_server_pid() != pid
            await a.commit(Changed(12))
            await b.wait_for(Changed(12))
            return b.seen

    assert run(scenario()) == [CachesStale("the events listener reconnected"), Changed(12)]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # its own transport
def test_sqlite_rows_pruned_before_they_were_read_make_caches_stale(database_url, monkeypatch):
    monkeypatch.setattr(relay_sqlite, "POLL_SECONDS", 3600)  # b polls only when told here

    async def scenario():
        async with Process(database_url) as a, Process(database_url) as b:
            await a.commit(Changed(13))
            await a.commit(Changed(14))
            await a.commit(Changed(15))
            async with a.engine.begin() as conn:
                # Two rows aged past KEEP_SECONDS, then the prune job.
                await conn.execute(update(relayed_events)
                                   .where(relayed_events.c.id <= b.relay.last + 2)
                                   .values(created_at=func.datetime("now", "-1 hour")))
            await a.relay.prune()
            async with a.engine.connect() as conn:
                left = (await conn.execute(select(relayed_events.c.id))).scalars().all()
            await b.relay.poll()
            return b.seen, left

    seen, left = run(scenario())
    assert len(left) == 1
    assert [type(x) for x in seen] == [CachesStale, Changed]
    assert "pruned unread" in seen[0].reason and seen[1] == Changed(15)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # its own transport
def test_sqlite_prune_keeps_recent_rows_and_the_newest(database_url):

    async def scenario():
        async with Process(database_url) as a:
            for i in range(3):
                await a.commit(Changed(20 + i))
            await a.relay.prune()
            async with a.engine.connect() as conn:
                recent = await conn.scalar(select(func.count()).select_from(relayed_events))
            async with a.engine.begin() as conn:
                await conn.execute(update(relayed_events)
                                   .values(created_at=func.datetime("now", "-1 hour")))
            await a.relay.prune()
            async with a.engine.connect() as conn:
                old = (await conn.execute(select(relayed_events.c.id))).scalars().all()
            # A process starting now begins after the newest id: nothing looks missing.
            async with Process(database_url) as b:
                await a.commit(Changed(30))
                await b.wait_for(Changed(30))
                return recent, old, b.seen

    recent, old, seen = run(scenario())
    assert recent == 3
    assert len(old) == 1
    assert seen == [Changed(30)]


def test_caches_stale_makes_the_app_forget_what_it_cached(client, api, root, database_url):
    """Changes made behind the app's back (no event) are seen once the relay says caches are
    stale: the device-key cache and the ingestor's sensors forget everything."""
    from tests.helpers import device_key

    device = api.device(root)
    key = device_key(device["api_key"])
    assert api.post("/readings", key, json={"ts": 1767268800, "values": {"t": 50}}
                    ).status_code == 202
    (sensor,) = api.get("/sensors", root, params={"device_id": device["id"]}).json()["items"]

    async def behind_the_back(stale: bool) -> None:
        engine = create_engine(database_url)
        try:
            async with engine.begin() as conn:
                if not stale:
                    await conn.execute(text("UPDATE devices SET api_key_hash = 'x' WHERE id = :d"),
                                       {"d": device["id"]})
                    await conn.execute(text("UPDATE sensors SET valid_max = 10 WHERE id = :s"),
                                       {"s": sensor["id"]})
                elif engine.dialect.name == "sqlite":
                    await conn.execute(relayed_events.insert().values(
                        origin="other", messages='[{"event":"unknown.kind","data":{}}]'))
                else:
                    await conn.execute(text("SELECT pg_notify(:c, 'other 0 0 1 [{}]')"),
                                       {"c": relay_pg.CHANNEL})
        finally:
            await engine.dispose()

    def valid(ts: int) -> bool:
        items = api.get("/readings", root, params={"sensor_id": sensor["id"], "start": ts,
                                                   "end": ts, "include_invalid": True}
                        ).json()["items"]
        return items[0]["valid"]

    run(behind_the_back(stale=False))
    # Cached: the old key and the old (absent) range still hold.
    assert api.post("/readings", key, json={"ts": 1767268801, "values": {"t": 50}}
                    ).status_code == 202
    assert valid(1767268801) is True
    run(behind_the_back(stale=True))
    started = time.monotonic()
    while api.post("/readings", key, json={"ts": 1767268802, "values": {"t": 50}}
                   ).status_code == 202:
        assert time.monotonic() - started < 2, "the cached key was not forgotten"
        time.sleep(0.02)
    assert api.post("/readings", key, json={"ts": 1767268803, "values": {"t": 50}}
                    ).status_code == 401
    assert api.post(f"/devices/{device['id']}/readings", root,
                    json={"ts": 1767268804, "values": {"t": 50}}).status_code == 202
    assert valid(1767268804) is False
