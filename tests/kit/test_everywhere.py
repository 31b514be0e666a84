"""A unit of work whose events say ``answer_when_everywhere`` ends only once every live process
sharing the database applied them (telemetra.db.relay), on SQLite and PostgreSQL.

Each "process" is an engine, a bus and a relay of its own on one database (two real
``telemetra serve`` processes: tests/db/test_answer_everywhere.py).
"""

import asyncio
import logging
import time
from dataclasses import dataclass

from sqlalchemy import text

from telemetra.db.engine import create_engine
from telemetra.db.relay import base as relay_base
from telemetra.db.relay import relay_for
from telemetra.db.relay.postgres import PEERS_CHANNEL
from telemetra.devices.events import DeviceChanged
from telemetra.kit.db import write_transaction
from telemetra.kit.events import EventBus, event, record
from telemetra.orgs.events import InvalidTagsChanged
from telemetra.sensors.events import SensorChanged


@event("test.everywhere_must")
@dataclass(frozen=True, slots=True)
class MustBeSeen:
    answer_when_everywhere = True
    thing_id: int


class Process:
    def __init__(self, database_url: str) -> None:
        self.engine = create_engine(database_url)
        self.bus = EventBus()
        self.seen: list = []
        self.bus.subscribe(MustBeSeen, self.seen.append)
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

    async def knows(self, origin: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while origin not in {peer.origin for peer in self.relay.live_peers()}:
            assert time.monotonic() < deadline, f"{origin} never heard of"
            await asyncio.sleep(0.01)
            if self.engine.dialect.name == "sqlite":
                await self.relay._read_peers()


def test_the_changes_that_must_be_seen_at_once_are_marked():
    for kind in (DeviceChanged, SensorChanged, InvalidTagsChanged):
        assert kind.answer_when_everywhere is True


def test_a_change_ends_only_once_the_other_process_applied_it(database_url):
    async def scenario():
        async with Process(database_url) as a, Process(database_url) as b:
            await a.knows(b.relay.origin)
            seen_at_return = []
            for i in range(10):
                await a.commit(MustBeSeen(i))
                seen_at_return.append(MustBeSeen(i) in b.seen)  # no waiting here
            return seen_at_return, a.relay.late

    seen_at_return, late = asyncio.run(scenario())
    assert seen_at_return == [True] * 10
    assert late == 0


def test_a_silent_peer_delays_changes_by_the_bound_and_only_until_it_expires(
        database_url, monkeypatch, caplog):
    monkeypatch.setattr(relay_base, "ANSWER_WAIT_SECONDS", 0.3)
    monkeypatch.setattr(relay_base, "PEER_EXPIRY_SECONDS", 1.0)

    async def scenario():
        async with Process(database_url) as a:
            # A process that announced itself, then died (killed with -9): never applies.
            async with a.engine.begin() as conn:
                if a.engine.dialect.name == "sqlite":
                    await conn.execute(text(
                        "INSERT INTO relay_peers (origin, position, interests, heard) "
                        "VALUES ('silent', 0, '{}', :now)"), {"now": time.time()})
                else:
                    await conn.execute(text("SELECT pg_notify(:c, 'hb silent {}')"),
                                       {"c": PEERS_CHANNEL})
            await a.knows("silent")
            started = time.monotonic()
            await a.commit(MustBeSeen(1))
            waited = time.monotonic() - started
            late_then = a.relay.late
            await asyncio.sleep(1.2)  # past its expiry
            started = time.monotonic()
            await a.commit(MustBeSeen(2))
            return waited, late_then, a.relay.late, time.monotonic() - started

    with caplog.at_level(logging.WARNING, logger="telemetra.relay"):
        waited, late_then, late_after, second = asyncio.run(scenario())
    print(f"waited {waited:.2f}s for the silent peer, then {second:.3f}s")
    assert waited >= 0.3  # the bound, then answered anyway
    assert late_then == 1 and late_after == 1
    assert any("answered before 1 other process" in r.message and "silent" in r.message
               for r in caplog.records)
