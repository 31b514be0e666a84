"""Online/offline from device traffic: every MQTT uplink message, and every body of readings
a device sends over HTTP with its key, marks its device seen. Marks are
gathered and written once a second in one statement, so a device publishing 100 messages a
second costs one UPDATE, not 100.

A fleet is thousands of devices each seen every few seconds: written every second, that is
thousands of row updates a second for a ``last_seen`` that moves by seconds. So a device whose
mark was written less than ``REWRITE_SECONDS`` ago (a tenth of its ``offline_after_seconds``
when that is shorter) keeps its newer mark for a later flush: each device is written at most
that often, its ``last_seen`` is at most that late, and it never looks offline meanwhile (its
``online_until`` runs far beyond). What was written is remembered for a bounded number of
devices (LRU); a device that said goodbye is forgotten, so its next message is written at once.
"""

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from cachetools import LRUCache
from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from telemetra.commands.schemas import CommandStatus
from telemetra.db.tables import commands, devices
from telemetra.ingest.ingest import padded
from telemetra.kit.db import write_transaction
from telemetra.kit.timeutil import utcnow

log = logging.getLogger("telemetra.mqtt")

CHUNK = 500  # ids a statement names at most (SQLite's and asyncpg's parameter limits)
REWRITE_SECONDS = 10.0
REMEMBERED_DEVICES = 20_000

_MARK_SEEN = (update(devices).where(devices.c.id == bindparam("device_id"))
              .values(last_seen=bindparam("seen"), online_until=bindparam("until")))


class Presence:
    def __init__(self, engine: AsyncEngine,
                 on_back_online: Callable[[int], Awaitable[None]], *,
                 rewrite_seconds: float = REWRITE_SECONDS,
                 remembered: int = REMEMBERED_DEVICES) -> None:
        self.engine = engine
        self._on_back_online = on_back_online
        self._seen: dict[int, datetime] = {}
        self._rewrite = rewrite_seconds
        # device_id -> (when its mark is due again, the online_until written)
        self._written: LRUCache[int, tuple[datetime, datetime]] = LRUCache(remembered)

    def mark(self, device_id: int) -> None:
        self._seen[device_id] = utcnow()

    async def flush(self, *, every_mark: bool = False) -> None:
        """Write the marks that are due (``every_mark``: all of them, when stopping); devices
        that were offline until now get their queued commands. Rows are written in id order,
        so two processes flushing the same devices never deadlock each other."""
        seen, self._seen = self._seen, {}
        now, ids = utcnow(), []
        for device_id, moment in seen.items():
            written = None if every_mark else self._written.get(device_id)
            if written is None or now >= written[0] or moment >= written[1]:
                ids.append(device_id)
            else:  # written a moment ago: kept for a later flush, unless a newer mark comes
                self._seen.setdefault(device_id, moment)
        if not ids:
            return
        ids.sort()
        back: list[int] = []
        done: list[tuple[int, datetime, datetime]] = []  # (device, due again, online_until)
        async with write_transaction(self.engine) as conn:
            for start in range(0, len(ids), CHUNK):
                rows = (await conn.execute(
                    select(devices.c.id, devices.c.online_until, devices.c.offline_after_seconds)
                    .where(devices.c.id.in_(padded(ids[start:start + CHUNK])))
                    .order_by(devices.c.id))).all()
                if not rows:
                    continue
                marks = [(row, seen[row.id],
                          seen[row.id] + timedelta(seconds=row.offline_after_seconds))
                         for row in rows]
                await conn.execute(_MARK_SEEN, [{"device_id": row.id, "seen": moment,
                                                 "until": until}
                                                for row, moment, until in marks])
                back.extend(row.id for row, moment, _ in marks
                            if row.online_until is None or row.online_until <= moment)
                done.extend((row.id, moment + timedelta(seconds=min(
                    self._rewrite, row.offline_after_seconds / 10)), until)
                    for row, moment, until in marks)
        for device_id, due, until in done:  # committed: remembered
            self._written[device_id] = (due, until)
        for device_id in await self._with_queued_commands(back):
            await self._on_back_online(device_id)

    async def _with_queued_commands(self, device_ids: list[int]) -> list[int]:
        """Which of the devices back online have commands queued: one query for all of them
        (a fleet coming online is thousands of devices, nearly all with none)."""
        found: list[int] = []
        if not device_ids:
            return found
        async with self.engine.connect() as conn:
            for start in range(0, len(device_ids), CHUNK):
                found.extend((await conn.scalars(
                    select(commands.c.device_id).distinct()
                    .where(commands.c.device_id.in_(padded(device_ids[start:start + CHUNK])),
                           commands.c.status == CommandStatus.queued.value)
                    .order_by(commands.c.device_id))).all())
        return found

    async def offline(self, device_id: int) -> None:
        """The device said goodbye (or its Last Will arrived): offline at once."""
        self._seen.pop(device_id, None)
        self._written.pop(device_id, None)
        async with write_transaction(self.engine) as conn:
            await conn.execute(update(devices).where(devices.c.id == device_id)
                               .values(online_until=utcnow()))
