"""Events to every Telemetra process sharing the database, as soon as their change commits.

``kit.events`` publishes a unit of work's events in the process that committed it. Caches live
long in every process (device keys, the ingestor's devices, sensors and invalid tags), so the
other processes must hear of a change at once too: a rotated key or a deactivated device is
refused everywhere from the moment it commits. The relay is the bus's ``stage`` hook: it
writes a unit's events inside that unit, just before its commit, so they reach the others
exactly when (and only if) the change does, and each process hands what others wrote to its
own subscribers (``bus.publish(events, remote=True)``).

- **PostgreSQL**: ``pg_notify`` in the transaction (PostgreSQL delivers it on commit, never on a
  rollback) and one dedicated asyncpg connection per process that LISTENs. A unit's events go
  in one notification, or in parts when they exceed a notification's ~8,000 bytes (parts of a
  transaction arrive together and in order); past ``MAX_UNIT_BYTES`` a ``CachesStale`` is sent
  instead. The listener pings its connection and reconnects with back-off when it drops.
- **SQLite**: no NOTIFY; the unit inserts its events into ``relayed_events`` and every process
  polls ``WHERE id > last`` every ``POLL_SECONDS`` (a seek on the primary key: nothing to read
  most of the time). Ids follow commit order without gaps (one writer at a time,
  AUTOINCREMENT), so a missing id means rows were pruned before this process read them.
  ``prune`` (a maintenance job) deletes rows older than ``KEEP_SECONDS``.

Both run whenever the app runs: whether another process shares the database cannot be known
from inside one, and the cost is one idle connection (PostgreSQL) or an empty indexed read
every 50 ms (SQLite).

**``CachesStale``**: when events may have been missed (the listener reconnected, rows were
pruned unread, a message could not be decoded, a unit was too large to send), the relay
publishes ``CachesStale`` locally. Every cache subscriber treats it as "forget everything"
(the caches fill again from the database on the next request).

Events whose class says ``local_only = True`` (they carry secrets) are never stored or sent.
Events a process publishes outside a unit of work (``bus.publish`` directly) stay in it.
"""

import asyncio
import contextlib
import itertools
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from telemetra.db.tables import relayed_events
from telemetra.kit.events import EventBus, event, from_message, to_message
from telemetra.kit.timeutil import utcnow

log = logging.getLogger("telemetra.relay")

CHANNEL = "telemetra_events"
# PostgreSQL refuses a payload of 8,000 bytes or more; the header takes the rest.
PG_PART_BYTES = 7_900
MAX_UNIT_BYTES = 1 << 20  # a unit whose events are larger is relayed as CachesStale
POLL_SECONDS = 0.05
POLL_ROWS = 500
KEEP_SECONDS = 600.0
PING_SECONDS = 5.0  # the listener checks its connection this often (a silent drop)
BACKOFF_SECONDS = (0.1, 5.0)  # first and longest wait between reconnection attempts


@event("caches.stale")
@dataclass(frozen=True, slots=True)
class CachesStale:
    """Events from other processes may have been missed: every cache forgets everything."""

    reason: str = ""


def relayable(events: list) -> list:
    """The events that may leave this process (not ``local_only``)."""
    return [item for item in events if not getattr(type(item), "local_only", False)]


def encode(events: list) -> str:
    """Events as one ASCII JSON text (ASCII: parts can be cut at any byte)."""
    return json.dumps([to_message(item) for item in events], ensure_ascii=True,
                      separators=(",", ":"))


def decode(messages: str) -> list:
    """The events ``encode`` wrote; raises ``ValueError``/``KeyError``/``TypeError``."""
    return [from_message(message) for message in json.loads(messages)]


class Relay:
    """What both transports share: an origin id, handing received events to the bus."""

    def __init__(self, engine: AsyncEngine, bus: EventBus) -> None:
        self.engine = engine
        self.bus = bus
        self.origin = uuid.uuid4().hex  # this process: its own messages come back, skipped
        self.received = 0  # events handed to this process's subscribers from others
        self.stale = 0  # CachesStale published
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Begin receiving (before this process caches anything) and install ``bus.stage``."""
        await self._open()
        self.bus.stage = self.stage
        self._task = asyncio.create_task(self._run(), name="events-relay")

    async def stop(self) -> None:
        if self.bus.stage == self.stage:
            self.bus.stage = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._close()

    async def stage(self, conn: AsyncConnection, events: list) -> None:
        """Write ``events`` in ``conn``'s transaction (the bus calls this before the commit)."""
        events = relayable(events)
        if not events:
            return
        messages = encode(events)
        if len(messages) > MAX_UNIT_BYTES:
            log.warning("%d events of %d bytes are too large to relay; other processes are "
                        "told to forget their caches", len(events), len(messages))
            messages = encode([CachesStale("a unit of work's events were too large")])
        await self._write(conn, messages)

    async def prune(self) -> None:
        """Maintenance: drop what every process has long read (nothing to do on PostgreSQL)."""

    def _deliver(self, origin: str, messages: str) -> None:
        if origin == self.origin:
            return  # published here already, right after the commit
        try:
            events = decode(messages)
        except (ValueError, KeyError, TypeError) as exc:
            # A newer process's event type, say: what changed is unknown, so forget it all.
            self._stale(f"undecodable events from another process ({exc!r})")
            return
        self.received += len(events)
        self.bus.publish(events, remote=True)

    def _stale(self, reason: str) -> None:
        log.warning("events from other processes may have been missed (%s); caches are "
                    "cleared", reason)
        self.stale += 1
        self.bus.publish([CachesStale(reason)], remote=True)

    async def _open(self) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError

    async def _write(self, conn: AsyncConnection, messages: str) -> None:
        raise NotImplementedError

    async def _run(self) -> None:
        raise NotImplementedError


class PostgresRelay(Relay):
    """NOTIFY in the unit of work; one LISTENing connection per process."""

    def __init__(self, engine: AsyncEngine, bus: EventBus) -> None:
        super().__init__(engine, bus)
        self._seq = itertools.count()
        self._conn = None
        self._lost: asyncio.Event | None = None
        self._parts: dict[tuple[str, str], list[str]] = {}

    async def _write(self, conn: AsyncConnection, messages: str) -> None:
        seq = next(self._seq)
        parts = [messages[i:i + PG_PART_BYTES]
                 for i in range(0, len(messages), PG_PART_BYTES)] or [""]
        for i, part in enumerate(parts):
            # "origin seq i n " then the part: seq keeps two units' identical payloads
            # apart (PostgreSQL folds equal notifications of one transaction into one).
            await conn.execute(text("SELECT pg_notify(:channel, :payload)"),
                               {"channel": CHANNEL,
                                "payload": f"{self.origin} {seq} {i} {len(parts)} {part}"})

    def _connect_args(self) -> dict:
        _, args = self.engine.dialect.create_connect_args(self.engine.url)
        for adapter_only in ("prepared_statement_cache_size", "async_fallback"):
            args.pop(adapter_only, None)
        return {"timeout": 10, **args}

    async def _open(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(**self._connect_args())
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(CHANNEL, self._on_notify)
        except BaseException:
            conn.terminate()
            raise
        self._conn, self._lost = conn, lost

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        self._parts.clear()
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 2)
            except Exception:
                conn.terminate()

    def _on_notify(self, _conn, _pid: int, _channel: str, payload: str) -> None:
        try:
            origin, seq, index, count, part = payload.split(" ", 4)
            index, count = int(index), int(count)
        except ValueError:
            self._stale("a malformed notification")
            return
        if origin == self.origin:
            return
        if count == 1:
            self._deliver(origin, part)
            return
        parts = self._parts.setdefault((origin, seq), [])
        if index != len(parts):
            del self._parts[(origin, seq)]
            self._stale("a notification's parts arrived out of order")
            return
        parts.append(part)
        if len(parts) == count:
            del self._parts[(origin, seq)]
            self._deliver(origin, "".join(parts))

    async def _run(self) -> None:
        delay = BACKOFF_SECONDS[0]
        while True:
            if self._conn is None:
                try:
                    await self._open()
                except Exception as exc:
                    log.warning("events listener cannot reconnect (%s); next try in %.1fs",
                                exc.__class__.__name__, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, BACKOFF_SECONDS[1])
                    continue
                delay = BACKOFF_SECONDS[0]
                # Listening again: what was sent meanwhile is lost, so caches start afresh.
                self._stale("the events listener reconnected")
            try:
                await self._watch()
            except Exception as exc:
                log.warning("events listener lost its connection (%s); reconnecting",
                            exc.__class__.__name__)
            await self._close()

    async def _watch(self) -> None:
        """Return when the listening connection is gone (closed, or unanswered pings)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), PING_SECONDS)
            if self._lost.is_set() or self._conn.is_closed():
                return
            await asyncio.wait_for(self._conn.fetchval("SELECT 1"), PING_SECONDS)


class SqliteRelay(Relay):
    """A row in ``relayed_events`` in the unit of work; every process polls the table."""

    def __init__(self, engine: AsyncEngine, bus: EventBus) -> None:
        super().__init__(engine, bus)
        self.last = 0  # the highest id read
        self.polls = 0
        self._db = None
        self._failing = False

    async def _write(self, conn: AsyncConnection, messages: str) -> None:
        await conn.execute(insert(relayed_events).values(origin=self.origin,
                                                         messages=messages))

    async def _open(self) -> None:
        import aiosqlite

        # Its own connection (not one of the pool's): a poll is one call to its thread.
        self._db = await aiosqlite.connect(self.engine.url.database, isolation_level=None)
        await self._db.execute("PRAGMA busy_timeout=15000")
        rows = await self._db.execute_fetchall("SELECT COALESCE(MAX(id), 0) "
                                               "FROM relayed_events")
        # Events written before this process started concern caches it does not have yet.
        self.last = rows[0][0]

    async def _close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await db.close()

    async def poll(self) -> int:
        """Hand what other processes wrote since the last poll to the bus; rows read."""
        self.polls += 1
        rows = await self._db.execute_fetchall(
            "SELECT id, origin, messages FROM relayed_events WHERE id > ? ORDER BY id LIMIT ?",
            (self.last, POLL_ROWS))
        for row_id, origin, messages in rows:
            if row_id != self.last + 1:
                self._stale(f"events {self.last + 1} to {row_id - 1} were pruned unread")
            self.last = row_id
            self._deliver(origin, messages)
        return len(rows)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                while await self.poll() == POLL_ROWS:
                    pass
                if self._failing:
                    log.warning("polling for events works again")
                    self._failing = False
            except asyncio.CancelledError:
                raise
            except Exception:
                # The position did not move: nothing is missed, the next poll reads it.
                if not self._failing:
                    log.exception("polling for events failed; trying again")
                    self._failing = True

    async def prune(self) -> None:
        cutoff = utcnow() - timedelta(seconds=KEEP_SECONDS)
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(sqlite_write=True)
            async with conn.begin():
                # Keep the newest row: a process starting reads its id as where to begin.
                newest = select(func.max(relayed_events.c.id)).scalar_subquery()
                await conn.execute(delete(relayed_events).where(
                    relayed_events.c.created_at < cutoff, relayed_events.c.id < newest))


def relay_for(engine: AsyncEngine, bus: EventBus) -> Relay | None:
    """The transport for this database; None for an in-memory SQLite (one process only)."""
    if engine.dialect.name == "postgresql":
        return PostgresRelay(engine, bus)
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return SqliteRelay(engine, bus)
