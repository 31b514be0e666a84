"""Events to every Telemetra process sharing the database, as soon as their change commits.

``kit.events`` publishes a unit of work's events in the process that committed it. Caches live
long in every process (device keys, the ingestor's devices, sensors and invalid tags), so the
other processes must hear of a change at once too: a rotated key or a deactivated device is
refused everywhere from the moment it commits. The relay is the bus's ``stage`` hook: it
writes a unit's events inside that unit, just before its commit, so they reach the others
exactly when (and only if) the change does, and each process hands what others wrote to its
own subscribers (``bus.publish(events, remote=True)``).

- **PostgreSQL** (``relay.postgres``): ``pg_notify`` in the transaction (delivered on commit,
  never on a rollback), one LISTENing asyncpg connection per process.
- **SQLite** (``relay.sqlite``): ``relayed_events`` rows, polled by every process every 50 ms.

A change whose events say ``answer_when_everywhere`` is answered only once every live process
applied it, within ``ANSWER_WAIT_SECONDS`` (``relay.base``: peers, heartbeats, the wait).

Both run whenever the app runs: whether another process shares the database cannot be known
from inside one, and the cost is one idle connection (PostgreSQL) or an empty indexed read
every 50 ms (SQLite), and a heartbeat a second.

**``CachesStale``**: when events may have been missed (the listener reconnected, rows were
pruned unread, a message could not be decoded, a unit was too large to send), the relay
publishes ``CachesStale`` locally. Every cache subscriber treats it as "forget everything"
(the caches fill again from the database on the next request).

Events whose class says ``local_only = True`` (they carry secrets) are never stored or sent.
Events a process publishes outside a unit of work (``bus.publish`` directly) stay in it, but
for the writer's ``ReadingsCommitted``, which ``relay.readings`` sends to the processes that
asked for it.
"""

from sqlalchemy.ext.asyncio import AsyncEngine

from telemetra.db.relay.base import (
    ANSWER_WAIT_SECONDS,
    CachesStale,
    Relay,
    decode,
    encode,
    relayable,
)
from telemetra.kit.events import EventBus

__all__ = ["ANSWER_WAIT_SECONDS", "CachesStale", "Relay", "decode", "encode", "relay_for",
           "relayable"]


def relay_for(engine: AsyncEngine, bus: EventBus) -> Relay | None:
    """The transport for this database; None for an in-memory SQLite (one process only)."""
    if engine.dialect.name == "postgresql":
        from telemetra.db.relay.postgres import PostgresRelay

        return PostgresRelay(engine, bus)
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    from telemetra.db.relay.sqlite import SqliteRelay

    return SqliteRelay(engine, bus)
