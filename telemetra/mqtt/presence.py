"""Online/offline from MQTT traffic: every uplink message marks its device seen. Marks are
gathered and written once a second in one statement, so a device publishing 100 messages a
second costs one UPDATE, not 100."""

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from telemetra.commands.schemas import CommandStatus
from telemetra.db.tables import commands, devices
from telemetra.kit.db import write_transaction
from telemetra.kit.timeutil import utcnow

log = logging.getLogger("telemetra.mqtt")

CHUNK = 500  # ids a statement names at most (SQLite's and asyncpg's parameter limits)

_MARK_SEEN = (update(devices).where(devices.c.id == bindparam("device_id"))
              .values(last_seen=bindparam("seen"), online_until=bindparam("until")))


class Presence:
    def __init__(self, engine: AsyncEngine,
                 on_back_online: Callable[[int], Awaitable[None]]) -> None:
        self.engine = engine
        self._on_back_online = on_back_online
        self._seen: dict[int, datetime] = {}

    def mark(self, device_id: int) -> None:
        self._seen[device_id] = utcnow()

    async def flush(self) -> None:
        """Write the marks; devices that were offline until now get their queued commands.
        Rows are written in id order, so two processes flushing the same devices never
        deadlock each other."""
        seen, self._seen = self._seen, {}
        if not seen:
            return
        back: list[int] = []
        ids = sorted(seen)
        async with write_transaction(self.engine) as conn:
            for start in range(0, len(ids), CHUNK):
                rows = (await conn.execute(
                    select(devices.c.id, devices.c.online_until, devices.c.offline_after_seconds)
                    .where(devices.c.id.in_(ids[start:start + CHUNK]))
                    .order_by(devices.c.id))).all()
                if not rows:
                    continue
                await conn.execute(_MARK_SEEN, [
                    {"device_id": row.id, "seen": seen[row.id],
                     "until": seen[row.id] + timedelta(seconds=row.offline_after_seconds)}
                    for row in rows])
                back.extend(row.id for row in rows
                            if row.online_until is None or row.online_until <= seen[row.id])
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
                    .where(commands.c.device_id.in_(device_ids[start:start + CHUNK]),
                           commands.c.status == CommandStatus.queued.value)
                    .order_by(commands.c.device_id))).all())
        return found

    async def offline(self, device_id: int) -> None:
        """The device said goodbye (or its Last Will arrived): offline at once."""
        self._seen.pop(device_id, None)
        async with write_transaction(self.engine) as conn:
            await conn.execute(update(devices).where(devices.c.id == device_id)
                               .values(online_until=utcnow()))
