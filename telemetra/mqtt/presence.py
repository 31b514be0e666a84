"""Online/offline from MQTT traffic: every uplink message marks its device seen. Marks are
gathered and written once a second in one statement, so a device publishing 100 messages a
second costs one UPDATE, not 100."""

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from telemetra.db.tables import devices
from telemetra.kit.db import write_transaction
from telemetra.kit.timeutil import utcnow

log = logging.getLogger("telemetra.mqtt")

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
        """Write the marks; devices that were offline until now get their queued commands."""
        seen, self._seen = self._seen, {}
        if not seen:
            return
        async with write_transaction(self.engine) as conn:
            rows = (await conn.execute(
                select(devices.c.id, devices.c.online_until, devices.c.offline_after_seconds)
                .where(devices.c.id.in_(list(seen))))).all()
            if rows:
                await conn.execute(_MARK_SEEN, [
                    {"device_id": row.id, "seen": seen[row.id],
                     "until": seen[row.id] + timedelta(seconds=row.offline_after_seconds)}
                    for row in rows])
        for row in rows:
            if row.online_until is None or row.online_until <= seen[row.id]:
                await self._on_back_online(row.id)

    async def offline(self, device_id: int) -> None:
        """The device said goodbye (or its Last Will arrived): offline at once."""
        self._seen.pop(device_id, None)
        async with write_transaction(self.engine) as conn:
            await conn.execute(update(devices).where(devices.c.id == device_id)
                               .values(online_until=utcnow()))
