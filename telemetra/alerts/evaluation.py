"""Alert evaluation: every committed batch's new rows, in the process that wrote it, and the
device status job's transitions (``offline``).

What evaluation needs is held in memory and kept true by events: the organizations' enabled
rules by key (``AlertRuleChanged``), sensors' devices and keys (``SensorChanged``), devices'
status, site and groups (``DeviceChanged``, ``GroupMembersChanged``), and each rule's episodes
that are not clear (``EpisodeChanged``, from every process). So a batch that changes no
episode costs no query; one that does opens or resolves alerts in one unit of work, where the
database's partial unique index keeps one open alert per rule and episode whatever the
processes do at once."""

import logging
from collections import defaultdict
from datetime import timedelta

from cachetools import LRUCache
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from telemetra.alerts import service
from telemetra.alerts.conditions import DeviceInfo, Rule, breaches, may_change
from telemetra.alerts.events import AlertRuleChanged, EpisodeChanged
from telemetra.db.relay import CachesStale
from telemetra.db.tables import alert_pending, alert_rules, alerts, devices, group_members
from telemetra.db.tables import sensors as sensors_table
from telemetra.db.types import from_micros
from telemetra.devices.events import DeviceChanged, DeviceStatusChanged
from telemetra.groups.events import GroupMembersChanged
from telemetra.ingest.events import ReadingsCommitted
from telemetra.kit.db import write_transaction
from telemetra.kit.events import EventBus, record
from telemetra.kit.timeutil import utcnow
from telemetra.sensors.events import SensorChanged
from telemetra.system.metrics import ALERTS_FIRED

log = logging.getLogger("telemetra.alerts")

MAINTENANCE = "maintenance"
OFFLINE = "offline"


class Evaluator:
    """Opens and resolves alerts from readings and device status transitions."""

    def __init__(self, engine: AsyncEngine, events: EventBus, retry: timedelta,
                 cache_size: int = 100_000) -> None:
        self.engine, self.events, self.retry = engine, events, retry
        self._rules: dict[int, dict[str | None, list[Rule]]] = {}  # org -> key -> rules
        self._sensors: LRUCache = LRUCache(cache_size)  # sensor id -> (device id, key)
        self._devices: LRUCache = LRUCache(cache_size)  # device id -> DeviceInfo
        self._episodes: dict[tuple[int, str], str] | None = None  # (rule, episode) -> state
        self.fired = 0

    def subscribe(self) -> None:
        """Wire the evaluator to the bus (in the lifespan)."""
        bus = self.events
        bus.subscribe(ReadingsCommitted, self.on_readings, here_only=True,
                      name="alert evaluation")
        bus.subscribe(DeviceStatusChanged, self.on_status, here_only=True,
                      name="alert evaluation, offline")
        bus.subscribe(AlertRuleChanged, self._rules_changed, name="alert rules")
        bus.subscribe(EpisodeChanged, self._episode_changed, name="alert episodes")
        bus.subscribe(DeviceChanged, self._device_changed, name="alert devices")
        bus.subscribe(SensorChanged, lambda e: self._sensors.pop(e.sensor_id, None),
                      name="alert sensors")
        bus.subscribe(GroupMembersChanged, lambda _e: self._devices.clear(),
                      name="alert groups")
        bus.subscribe(CachesStale, lambda _e: self.forget_everything(), name="alerts, all")

    def forget_everything(self) -> None:
        self._rules.clear()
        self._sensors.clear()
        self._devices.clear()
        self._episodes = None

    def _rules_changed(self, changed: AlertRuleChanged) -> None:
        self._rules.pop(changed.organization_id, None)

    def _device_changed(self, changed: DeviceChanged) -> None:
        self._devices.pop(changed.device_id, None)
        if changed.deleted:  # its rules went with it
            self._rules.pop(changed.organization_id, None)

    def _episode_changed(self, changed: EpisodeChanged) -> None:
        if self._episodes is None:
            return
        key = (changed.rule_id, changed.episode)
        if changed.state == "clear":
            self._episodes.pop(key, None)
        else:
            self._episodes[key] = changed.state

    async def _view(self, organization_ids, sensor_ids) -> tuple[dict, dict, dict]:
        """The rules, sensors and devices a batch needs, from memory or read: held for the
        batch, so an event dropping a cache entry meanwhile cannot make it skip rows."""
        rules = {o: self._rules[o] for o in organization_ids if o in self._rules}
        known = {s: self._sensors.get(s) for s in sensor_ids}
        sensors = {s: v for s, v in known.items() if v is not None}
        devices = {d: self._devices.get(d) for d in {v[0] for v in sensors.values()}}
        if (self._episodes is None or len(rules) < len(organization_ids)
                or len(sensors) < len(known) or None in devices.values()):
            async with self.engine.connect() as conn:
                await self._load_episodes(conn)
                rules.update(await self._load_rules(conn, [o for o in organization_ids
                                                           if o not in rules]))
                missing = [s for s in known if s not in sensors]
                if missing:
                    for row in await conn.execute(select(
                            sensors_table.c.id, sensors_table.c.device_id, sensors_table.c.key)
                            .where(sensors_table.c.id.in_(missing))):
                        sensors[row.id] = self._sensors[row.id] = (row.device_id, row.key)
                devices = await self._load_devices(conn, {v[0] for v in sensors.values()})
        return rules, sensors, devices

    async def _load_episodes(self, conn: AsyncConnection) -> dict:
        if self._episodes is not None:
            return self._episodes
        episodes = {(r.rule_id, r.episode): "open" for r in await conn.execute(
            select(alerts.c.rule_id, alerts.c.episode).where(alerts.c.resolved_at.is_(None)))}
        episodes.update({(r.rule_id, r.episode): "pending" for r in await conn.execute(
            select(alert_pending.c.rule_id, alert_pending.c.episode))})
        self._episodes = episodes
        return episodes

    async def _load_rules(self, conn: AsyncConnection, organization_ids) -> dict:
        if not organization_ids:
            return {}
        by_org: dict[int, dict] = {o: defaultdict(list) for o in organization_ids}
        for row in (await conn.execute(select(alert_rules).where(
                alert_rules.c.organization_id.in_(organization_ids), alert_rules.c.enabled))
                ).mappings():
            rule = Rule.from_row(row)
            by_org[rule.organization_id][None if rule.condition == OFFLINE
                                         else rule.key].append(rule)
        loaded = {o: dict(rules) for o, rules in by_org.items()}
        self._rules.update(loaded)
        return loaded

    async def _load_devices(self, conn: AsyncConnection, device_ids) -> dict:
        view = {d: self._devices.get(d) for d in device_ids}
        unknown = [d for d, info in view.items() if info is None]
        if not unknown:
            return view
        groups = defaultdict(set)
        for row in await conn.execute(select(group_members.c.device_id, group_members.c.group_id)
                                      .where(group_members.c.device_id.in_(unknown))):
            groups[row.device_id].add(row.group_id)
        for row in await conn.execute(select(devices.c.id, devices.c.organization_id,
                                             devices.c.status, devices.c.site_id)
                                      .where(devices.c.id.in_(unknown))):
            view[row.id] = self._devices[row.id] = DeviceInfo(
                row.id, row.organization_id, row.status, row.site_id, frozenset(groups[row.id]))
        return view

    async def on_readings(self, batch: ReadingsCommitted) -> None:
        """Evaluate a committed batch's new rows (the process that wrote it does)."""
        organization_ids = set(batch.organization_ids)
        if all(self._rules.get(o) == {} for o in organization_ids):
            return  # the usual case: no rule in these organizations
        # The batch's sensors first (in C): rows are read only for sensors a rule watches.
        candidates = [sensor_id for sensor_id, organization_id
                      in dict.fromkeys(zip(batch.sensor_ids, batch.organization_ids))
                      if self._rules.get(organization_id) != {}]
        rules, sensors, devices_ = await self._view(organization_ids, candidates)
        watched = {}
        for sensor_id in candidates:
            known = sensors.get(sensor_id)
            device = known and devices_.get(known[0])
            if device is None or device.status == MAINTENANCE:
                continue
            by_key = rules.get(device.organization_id, {}).get(known[1])
            if by_key:
                watched[sensor_id] = (device, by_key)
        if not watched:
            return
        by_sensor: dict[int, list] = defaultdict(list)
        for sensor_id, ts, value, valid in zip(batch.sensor_ids, batch.ts, batch.values,
                                               batch.valid):
            # Invalid readings (outside their valid range, tagged suspect...) never fire.
            if valid and sensor_id in watched:
                by_sensor[sensor_id].append((ts, value))
        episodes = self._episodes
        if episodes is None:  # forgotten meanwhile (CachesStale): read again
            async with self.engine.connect() as conn:
                episodes = await self._load_episodes(conn)
        actions = []
        for sensor_id, items in by_sensor.items():
            device, by_key = watched[sensor_id]
            actions.extend(self._evaluate_sensor(episodes, sensor_id, device, by_key, items))
        if actions:
            await self._apply(actions)

    def _evaluate_sensor(self, episodes: dict, sensor_id: int, device: DeviceInfo,
                         rules: list[Rule], items: list) -> list:
        values = [value for _, value in items]
        low, high = min(values), max(values)
        items.sort()
        episode = f"s{sensor_id}"
        actions = []
        for rule in rules:
            if not rule.covers(device):
                continue
            state = episodes.get((rule.id, episode), "clear")
            if not may_change(rule, state != "clear", low, high):
                continue
            for ts, value in items:
                holds = breaches(rule, value)
                if holds and state == "clear":
                    state = "pending" if rule.for_seconds else "open"
                    actions.append((state, rule, episode, device.id, sensor_id, value, ts))
                elif not holds and state != "clear":
                    actions.append(("clear", rule, episode, device.id, sensor_id, value, ts))
                    state = "clear"
            self._set_episode(episodes, rule.id, episode, state)
        return actions

    @staticmethod
    def _set_episode(episodes: dict, rule_id: int, episode: str, state: str) -> None:
        if state == "clear":
            episodes.pop((rule_id, episode), None)
        else:
            episodes[(rule_id, episode)] = state

    async def _apply(self, actions: list) -> None:
        try:
            async with write_transaction(self.engine, self.events) as conn:
                for action in actions:
                    await self._act(conn, *action)
        except Exception:
            self._episodes = None  # what memory says may not have happened: read it again
            raise

    async def _act(self, conn: AsyncConnection, state: str, rule: Rule, episode: str,
                   device_id: int, sensor_id: int | None, value: float | None,
                   ts: int | None) -> None:
        reading_ts = None if ts is None else from_micros(ts)
        if state == "open":
            if await service.open_alert(conn, rule, episode, device_id, sensor_id, value,
                                        reading_ts, self.retry) is not None:
                self.fired += 1
                ALERTS_FIRED.inc()
        elif state == "pending":
            now = utcnow()
            dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            await conn.execute(dialect_insert(alert_pending).values(
                rule_id=rule.id, episode=episode, organization_id=rule.organization_id,
                device_id=device_id, sensor_id=sensor_id, value=value, reading_ts=reading_ts,
                since=now, due_at=now + timedelta(seconds=rule.for_seconds),
            ).on_conflict_do_nothing(index_elements=["rule_id", "episode"]))
            record(conn, EpisodeChanged(rule.organization_id, rule.id, episode, "pending"))
        else:
            await conn.execute(delete(alert_pending).where(alert_pending.c.rule_id == rule.id,
                                                           alert_pending.c.episode == episode))
            if await service.resolve_episode(conn, rule.id, episode, self.retry) is None:
                record(conn, EpisodeChanged(rule.organization_id, rule.id, episode, "clear"))

    async def on_status(self, changed: DeviceStatusChanged) -> None:
        """``offline`` rules: a device going offline opens (or starts waiting out
        ``for_seconds``), coming back online resolves."""
        async with self.engine.connect() as conn:
            episodes = await self._load_episodes(conn)
            org_rules = self._rules.get(changed.organization_id)
            if org_rules is None:
                org_rules = (await self._load_rules(conn, [changed.organization_id])
                             )[changed.organization_id]
            device = (await self._load_devices(conn, [changed.device_id])).get(changed.device_id)
        rules = org_rules.get(None, ())
        if device is None or not rules:
            return
        episode = f"d{changed.device_id}"
        actions = []
        for rule in rules:
            if not rule.covers(device):
                continue
            if not changed.online and device.status != MAINTENANCE:
                state = "pending" if rule.for_seconds else "open"
            elif changed.online:
                state = "clear"
            else:
                continue
            actions.append((state, rule, episode, device.id, None, None, None))
            self._set_episode(episodes, rule.id, episode, state)
        if actions:
            await self._apply(actions)

    async def promote_due(self) -> int:
        """Open the alerts whose condition has held for their rule's ``for_seconds`` (a job,
        every second). Whoever deletes a due row opens its alert: once, in any process."""
        async with self.engine.connect() as conn:  # a read first: most seconds, none is due
            if await conn.scalar(select(alert_pending.c.rule_id)
                                 .where(alert_pending.c.due_at <= utcnow()).limit(1)) is None:
                return 0
        async with write_transaction(self.engine, self.events) as conn:
            due = (await conn.execute(delete(alert_pending)
                                      .where(alert_pending.c.due_at <= utcnow())
                                      .returning(*alert_pending.c))).mappings().all()
            if not due:
                return 0
            rules = {row["id"]: Rule.from_row(row) for row in (await conn.execute(
                select(alert_rules).where(alert_rules.c.id.in_({d["rule_id"] for d in due}),
                                          alert_rules.c.enabled))).mappings()}
            muted = set((await conn.scalars(select(devices.c.id).where(
                devices.c.id.in_({d["device_id"] for d in due}),
                devices.c.status == MAINTENANCE))).all())
            opened = 0
            for row in due:
                rule = rules.get(row["rule_id"])
                if rule is None or row["device_id"] in muted:
                    record(conn, EpisodeChanged(row["organization_id"], row["rule_id"],
                                                row["episode"], "clear"))
                    continue
                if await service.open_alert(conn, rule, row["episode"], row["device_id"],
                                            row["sensor_id"], row["value"], row["reading_ts"],
                                            self.retry) is not None:
                    opened += 1
            self.fired += opened
            ALERTS_FIRED.inc(opened)
            return opened
