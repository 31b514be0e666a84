"""Events after commit: published once their unit of work commits, never after a rollback."""

import asyncio
from dataclasses import dataclass

import pytest
from sqlalchemy import text

from telemetra.db.engine import create_engine
from telemetra.kit.db import write_transaction
from telemetra.kit.events import EventBus, event, from_message, record, to_message


@event("test.thing_changed")
@dataclass(frozen=True, slots=True)
class ThingChanged:
    thing_id: int
    keys: tuple[str, ...] = ()


def test_an_event_is_published_after_commit_and_dropped_on_rollback(database_url):
    async def scenario():
        engine = create_engine(database_url)
        bus = EventBus()
        seen, queued = [], []

        async def slow(item):
            queued.append(item)

        bus.subscribe(ThingChanged, seen.append)
        bus.subscribe(ThingChanged, slow)
        await bus.start()
        try:
            async with write_transaction(engine, bus) as conn:
                await conn.execute(text("SELECT 1"))
                record(conn, ThingChanged(1))
                assert seen == []  # not before the commit
            assert seen == [ThingChanged(1)]
            with pytest.raises(RuntimeError):
                async with write_transaction(engine, bus) as conn:
                    record(conn, ThingChanged(2))
                    raise RuntimeError("rolled back")
            async with write_transaction(engine, bus) as conn:
                pass  # the rolled-back event is not carried into the next unit of work
            assert seen == [ThingChanged(1)]
            await asyncio.sleep(0.05)
            assert queued == [ThingChanged(1)]
        finally:
            await bus.stop()
            await engine.dispose()

    asyncio.run(scenario())


def test_an_event_survives_the_trip_as_json():
    item = ThingChanged(3, ("a", "b"))
    assert from_message(to_message(item)) == item


def test_a_subscriber_that_fails_never_stops_the_others():
    bus = EventBus()
    seen = []

    def broken(item):
        raise ValueError("boom")

    bus.subscribe(ThingChanged, broken)
    bus.subscribe(ThingChanged, seen.append)
    bus.publish([ThingChanged(4)])
    assert seen == [ThingChanged(4)]


def test_a_here_only_subscriber_hears_this_processs_changes_not_relayed_ones():
    bus = EventBus()
    everywhere, here = [], []
    bus.subscribe(ThingChanged, everywhere.append)
    bus.subscribe(ThingChanged, here.append, here_only=True)
    bus.publish([ThingChanged(5)])
    bus.publish([ThingChanged(6)], remote=True)  # as a transport hands on another's event
    assert everywhere == [ThingChanged(5), ThingChanged(6)]
    assert here == [ThingChanged(5)]


def test_wants_follows_a_subscriber_that_wants_only_at_times_and_interest_is_announced():
    bus = EventBus()
    asked = []
    announced = []
    bus.interest_changed = lambda: announced.append(bus.interests())
    assert not bus.wants(ThingChanged)
    bus.subscribe(ThingChanged, lambda _e: None, active=lambda: bool(asked))
    assert not bus.wants(ThingChanged)  # a transport to other processes nobody asked of
    asked.append(1)
    assert bus.wants(ThingChanged)
    asked.clear()
    bus.subscribe(ThingChanged, lambda _e: None)  # an ordinary subscriber: always wants
    assert bus.wants(ThingChanged)
    bus.set_interest(ThingChanged, [3, 1])
    bus.set_interest(ThingChanged, [1, 3])  # unchanged: not announced again
    bus.set_interest(ThingChanged, [])
    assert announced == [{ThingChanged: frozenset({1, 3})}, {ThingChanged: frozenset()}]
