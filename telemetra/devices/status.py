"""The device status job: devices go offline when unseen past their
``offline_after_seconds``, and online again at their next message.

Writers only move ``online_until`` (last_seen + offline_after_seconds); this job compares it
with ``reported_online``, what was last reported, and flips that with a conditional UPDATE ...
RETURNING. Whichever process's UPDATE flips a row reports its transition
(``DeviceStatusChanged``), so each is reported once, whatever the number of processes.
"""

from sqlalchemy import and_, false, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncEngine

from telemetra.db.tables import devices
from telemetra.devices.events import DeviceStatusChanged
from telemetra.kit.db import write_transaction
from telemetra.kit.events import EventBus, record
from telemetra.kit.timeutil import utcnow

_REPORTED = (devices.c.id, devices.c.organization_id, devices.c.name, devices.c.status,
             devices.c.last_seen)


def _went_offline(now):
    return and_(devices.c.reported_online == true(),
                or_(devices.c.online_until.is_(None), devices.c.online_until <= now))


def _came_online(now):
    return and_(devices.c.reported_online == false(), devices.c.online_until > now)


async def report_transitions(engine: AsyncEngine, events: EventBus) -> int:
    """Report every device that went offline or came back online since the last run; how
    many transitions this process reported."""
    now = utcnow()
    async with engine.connect() as conn:  # a read first: most seconds, nothing changed
        if await conn.scalar(select(devices.c.id).where(
                or_(_went_offline(now), _came_online(now))).limit(1)) is None:
            return 0
    async with write_transaction(engine, events) as conn:
        reported = 0
        for where, online in ((_went_offline(now), False), (_came_online(now), True)):
            rows = (await conn.execute(update(devices).where(where)
                                       .values(reported_online=online)
                                       .returning(*_REPORTED))).all()
            record(conn, *(DeviceStatusChanged(
                row.id, row.organization_id, row.name, online, row.status,
                row.last_seen.isoformat().replace("+00:00", "Z") if row.last_seen else None)
                for row in rows))
            reported += len(rows)
        return reported
