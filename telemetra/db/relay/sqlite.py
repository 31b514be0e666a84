"""The relay on SQLite: a row in ``relayed_events`` in the unit of work; every process polls.

No NOTIFY: the unit inserts its events into ``relayed_events`` and every process polls
``WHERE id > last`` every ``POLL_SECONDS`` (a seek on the primary key: nothing to read most of
the time). Ids follow commit order without gaps (one writer at a time, AUTOINCREMENT), so a
missing id means rows were pruned before this process read them. ``prune`` (a maintenance
job) deletes rows older than ``KEEP_SECONDS``.

Each process keeps a row in ``relay_peers``: its heartbeat, its interests, and ``position``,
the last id it applied, written at each heartbeat and at once after applying a unit that waits
for everyone; a change that must be applied everywhere waits until every live peer's position
has passed its id.
"""

import asyncio
import time
from datetime import timedelta

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from telemetra.db.relay import base
from telemetra.db.relay.base import (
    Peer,
    Relay,
    answer_when_everywhere,
    decode_interests,
    encode_interests,
    log,
)
from telemetra.db.tables import relay_peers, relayed_events
from telemetra.kit.events import EventBus
from telemetra.kit.timeutil import utcnow

POLL_SECONDS = 0.05
POLL_ROWS = 500
KEEP_SECONDS = 600.0
PEERS_EVERY_POLLS = 4  # the peers' interests are read again every this many polls
APPLIED_POLL_SECONDS = 0.005  # a waiting change looks at the peers' positions this often


async def connect(database: str):
    """An aiosqlite connection of the relay's own (not one of the pool's), autocommit."""
    import aiosqlite

    db = await aiosqlite.connect(database, isolation_level=None)
    await db.execute("PRAGMA busy_timeout=15000")
    return db


class SqliteRelay(Relay):
    """A row in ``relayed_events`` in the unit of work; every process polls the table."""

    clock = staticmethod(time.time)  # peers' heartbeats are written by other processes

    def __init__(self, engine: AsyncEngine, bus: EventBus) -> None:
        super().__init__(engine, bus)
        self.last = 0  # the highest id read
        self.polls = 0
        self._db = None  # polls and reads
        self._beats = None  # this process's row in relay_peers
        self._failing = False

    async def _write(self, conn: AsyncConnection, messages: str, wait: bool) -> int:
        result = await conn.execute(insert(relayed_events).values(origin=self.origin,
                                                                  messages=messages))
        return result.inserted_primary_key[0]

    async def _open(self) -> None:
        self._db = await connect(self.engine.url.database)
        self._beats = await connect(self.engine.url.database)
        rows = await self._db.execute_fetchall("SELECT COALESCE(MAX(id), 0) "
                                               "FROM relayed_events")
        # Events written before this process started concern caches it does not have yet.
        self.last = rows[0][0]
        await self._beat()
        await self._read_peers()

    async def _close(self) -> None:
        for name in ("_db", "_beats"):
            db = getattr(self, name)
            setattr(self, name, None)
            if db is not None:
                await db.close()

    async def _beat(self) -> None:
        await self._beats.execute(
            "INSERT INTO relay_peers (origin, position, interests, heard) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (origin) DO UPDATE SET position = excluded.position, "
            "interests = excluded.interests, heard = excluded.heard",
            (self.origin, self.last, encode_interests(self.bus), time.time()))

    async def _leave(self) -> None:
        if self._beats is not None:
            await self._beats.execute("DELETE FROM relay_peers WHERE origin = ?",
                                      (self.origin,))

    async def _read_peers(self) -> None:
        rows = await self._db.execute_fetchall(
            "SELECT origin, position, interests, heard FROM relay_peers WHERE origin != ?",
            (self.origin,))
        self.peers = {origin: Peer(origin, heard, decode_interests(interests), position)
                      for origin, position, interests, heard in rows}

    async def _applied(self, token: int, deadline: float) -> set[str]:
        while True:
            since = time.time() - base.PEER_EXPIRY_SECONDS
            rows = await self._db.execute_fetchall(
                "SELECT origin FROM relay_peers WHERE origin != ? AND heard >= ? "
                "AND position < ?", (self.origin, since, token))
            if not rows or time.monotonic() >= deadline:
                return {origin for (origin,) in rows}
            await asyncio.sleep(APPLIED_POLL_SECONDS)

    async def poll(self) -> int:
        """Hand what other processes wrote since the last poll to the bus; rows read."""
        self.polls += 1
        if self.polls % PEERS_EVERY_POLLS == 0:
            await self._read_peers()
        rows = await self._db.execute_fetchall(
            "SELECT id, origin, messages FROM relayed_events WHERE id > ? ORDER BY id LIMIT ?",
            (self.last, POLL_ROWS))
        awaited = False
        for row_id, origin, messages in rows:
            if row_id != self.last + 1:
                self._stale(f"events {self.last + 1} to {row_id - 1} were pruned unread")
            self.last = row_id
            events = self._deliver(origin, messages)
            awaited = awaited or (events is None or answer_when_everywhere(events))
        if awaited:
            self._beat_now.set()  # a writer waits for this process's position
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
                await conn.execute(delete(relay_peers).where(
                    relay_peers.c.heard < time.time() - KEEP_SECONDS))
