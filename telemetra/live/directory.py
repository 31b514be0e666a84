"""What live messages need and events do not carry: a sensor's key and unit, a device's name,
site and groups. Read from the database in one query per kind for what is not cached.

Sensors are forgotten on ``SensorChanged``, devices on ``DeviceChanged``, every device's
groups on ``GroupMembersChanged`` (the hub wires them), so nothing needs an expiry: a device
added to a group reaches that group's subscriptions with the next event after the change. A
read that overlaps a change is not cached (the generation moved).
"""

from dataclasses import dataclass

from cachetools import LRUCache
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from telemetra.db.tables import devices, group_members, sensors

_CHUNK = 500  # ids per IN list


@dataclass(frozen=True, slots=True)
class SensorInfo:
    key: str
    unit: str | None


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    site_id: int | None
    group_ids: frozenset[int]


class Directory:
    def __init__(self, engine: AsyncEngine, size: int = 100_000) -> None:
        self.engine = engine
        self._sensors: LRUCache[int, SensorInfo] = LRUCache(size)
        self._devices: LRUCache[int, DeviceInfo] = LRUCache(size)
        self._generation = 0

    def forget_sensor(self, sensor_id: int) -> None:
        self._generation += 1
        self._sensors.pop(sensor_id, None)

    def forget_device(self, device_id: int) -> None:
        """The device changed (its site) or went. Its sensors' keys and units change only
        with ``SensorChanged``; ids are never reused, so a deleted one's entry is harmless."""
        self._generation += 1
        self._devices.pop(device_id, None)

    def forget_groups(self) -> None:
        """A group gained or lost devices, or went: the event does not say which devices, and
        a device's entry is little to read again."""
        self._generation += 1
        self._devices.clear()

    def clear(self) -> None:
        self._generation += 1
        self._sensors.clear()
        self._devices.clear()

    async def sensors(self, ids) -> dict[int, SensorInfo]:
        """The sensors of ``ids`` that exist (a deleted one is left out)."""
        found = {i: info for i in ids if (info := self._sensors.get(i)) is not None}
        missing = [i for i in ids if i not in found]
        if missing:
            generation = self._generation
            read = {}
            async with self.engine.connect() as conn:
                for part in _chunks(missing):
                    rows = await conn.execute(select(sensors.c.id, sensors.c.key, sensors.c.unit)
                                              .where(sensors.c.id.in_(part)))
                    read.update({row.id: SensorInfo(row.key, row.unit) for row in rows})
            if generation == self._generation:
                self._sensors.update(read)
            found.update(read)
        return found

    async def devices(self, ids) -> dict[int, DeviceInfo]:
        """The site and groups of the devices of ``ids`` that exist."""
        found = {i: info for i in ids if (info := self._devices.get(i)) is not None}
        missing = [i for i in ids if i not in found]
        if missing:
            generation = self._generation
            sites: dict[int, int | None] = {}
            groups: dict[int, set[int]] = {}
            async with self.engine.connect() as conn:
                for part in _chunks(missing):
                    rows = await conn.execute(select(devices.c.id, devices.c.site_id)
                                              .where(devices.c.id.in_(part)))
                    sites.update({row.id: row.site_id for row in rows})
                    rows = await conn.execute(
                        select(group_members.c.device_id, group_members.c.group_id)
                        .where(group_members.c.device_id.in_(part)))
                    for row in rows:
                        groups.setdefault(row.device_id, set()).add(row.group_id)
            read = {i: DeviceInfo(site, frozenset(groups.get(i, ())))
                    for i, site in sites.items()}
            if generation == self._generation:
                self._devices.update(read)
            found.update(read)
        return found


def _chunks(ids: list[int]):
    for start in range(0, len(ids), _CHUNK):
        yield ids[start:start + _CHUNK]
