"""The device status job (both backends): each transition reported once, whatever the number
of processes running the job at the same moment."""

import asyncio
from datetime import timedelta

from sqlalchemy import insert, update

from telemetra.db.engine import create_engine
from telemetra.db.tables import devices, organizations
from telemetra.devices.events import DeviceStatusChanged
from telemetra.devices.status import report_transitions
from telemetra.kit.events import EventBus
from telemetra.kit.timeutil import utcnow


def test_each_transition_is_reported_once_by_racing_processes(database_url):
    async def go() -> list[list[DeviceStatusChanged]]:
        engines = [create_engine(database_url) for _ in range(4)]  # as many processes
        buses, heard = [], []
        for _ in engines:
            bus, seen = EventBus(), []
            bus.subscribe(DeviceStatusChanged, seen.append)
            buses.append(bus)
            heard.append(seen)
        try:
            async with engines[0].begin() as conn:
                organization_id = await conn.scalar(insert(organizations).values(
                    name="org", invalid_tags=[]).returning(organizations.c.id))
                now = utcnow()
                await conn.execute(insert(devices), [
                    {"organization_id": organization_id, "name": f"d{n}",
                     "api_key_prefix": f"tdk_p{n}", "api_key_hash": f"h{n}",
                     "last_seen": now, "online_until": now + timedelta(minutes=5)}
                    for n in range(20)])

            async def race() -> None:
                await asyncio.gather(*(report_transitions(engine, bus)
                                       for engine, bus in zip(engines, buses)))

            await race()  # all come online
            await race()  # nothing changed: nothing reported
            async with engines[0].begin() as conn:  # unseen past their time: offline
                await conn.execute(update(devices).values(online_until=utcnow()))
            await race()
            await race()
            return heard
        finally:
            for engine in engines:
                await engine.dispose()

    heard = asyncio.run(go())
    reported = [event for seen in heard for event in seen]
    online = [e.device_id for e in reported if e.online]
    offline = [e.device_id for e in reported if not e.online]
    assert sorted(online) == sorted(set(online)) and len(online) == 20
    assert sorted(offline) == sorted(set(offline)) and len(offline) == 20
    assert {e.name for e in reported} == {f"d{n}" for n in range(20)}
    assert all(e.last_seen and e.last_seen.endswith("Z") for e in reported)
