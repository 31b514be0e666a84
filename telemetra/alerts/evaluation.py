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
from itertools import compress
from operator import and_

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
_SELECTED_PASSES = 2  # up to this many watched sensors in a batch: a pass in C for each


class Evaluator:
    """Opens and resolves alerts from readings and device status transitions."""

    def __init__(self, engine: AsyncEngine, events: EventBus, retry: timedelta,
                 cache_size: int = 100_000) -> None:
        self.engine, self.events, self.retry = engine, events, retry
        self._rules: dict[int, dict[str | None, list[Rule]]] = {}  # org -> key -> rules
        self._sensors: LRUCache = LRUCache(cache_size)  # sensor id -> (device id, key)
        self._devices: LRUCache = LRUCache(cache_size)  # device id -> DeviceInfo
        self._episodes: dict[tuple[int, str], str] | None = None  # (rule, episode) -> state
        # The index evaluation reads: sensor id -> (device id, the rules that watch it).
        # Emptied by any change to rules, devices, groups or sensors (all rare); an entry
        # read while one happened is not kept (``_generation`` moved).
        self._watch: LRUCache = LRUCache(cache_size)
        self._generation = 0  # moved by every change to rules, devices, groups or sensors
        self._episode_events = 0  # EpisodeChanged heard: one during a read makes it stale
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
        bus.subscribe(SensorChanged, self._sensor_changed, name="alert sensors")
        bus.subscribe(GroupMembersChanged, self._groups_changed, name="alert groups")
        bus.subscribe(CachesStale, lambda _e: self.forget_everything(), name="alerts, all")

    def forget_everything(self) -> None:
        self._rules.clear()
        self._sensors.clear()
        self._devices.clear()
        self._episodes = None
        self._reindex()

    def _reindex(self) -> None:
        self._watch.clear()
        self._generation += 1

    def _rules_changed(self, changed: AlertRuleChanged) -> None:
        self._rules.pop(changed.organization_id, None)
        self._reindex()

    def _device_changed(self, changed: DeviceChanged) -> None:
        self._devices.pop(changed.device_id, None)
        if changed.deleted:  # its rules went with it
            self._rules.pop(changed.organization_id, None)
        self._reindex()

    def _sensor_changed(self, changed: SensorChanged) -> None:
        self._sensors.pop(changed.sensor_id, None)
        self._watch.pop(changed.sensor_id, None)  # only its entry depends on it
        self._generation += 1

    def _groups_changed(self, _changed: GroupMembersChanged) -> None:
        self._devices.clear()
        self._reindex()

    def _episode_changed(self, changed: EpisodeChanged) -> None:
        self._episode_events += 1
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
                    generation = self._generation
                    read = {row.id: (row.device_id, row.key) for row in await conn.execute(
                        select(sensors_table.c.id, sensors_table.c.device_id,
                               sensors_table.c.key).where(sensors_table.c.id.in_(missing)))}
                    sensors.update(read)
                    if generation == self._generation:
                        self._sensors.update(read)
                devices = await self._load_devices(conn, {v[0] for v in sensors.values()})
        return rules, sensors, devices

    async def _load_episodes(self, conn: AsyncConnection) -> dict:
        if self._episodes is not None:
            return self._episodes
        heard = self._episode_events
        episodes = {(r.rule_id, r.episode): "open" for r in await conn.execute(
            select(alerts.c.rule_id, alerts.c.episode).where(alerts.c.resolved_at.is_(None)))}
        episodes.update({(r.rule_id, r.episode): "pending" for r in await conn.execute(
            select(alert_pending.c.rule_id, alert_pending.c.episode))})
        if heard == self._episode_events:  # else one changed meanwhile: read again next time
            self._episodes = episodes
        return episodes

    async def _load_rules(self, conn: AsyncConnection, organization_ids) -> dict:
        if not organization_ids:
            return {}
        generation = self._generation
        by_org: dict[int, dict] = {o: defaultdict(list) for o in organization_ids}
        for row in (await conn.execute(select(alert_rules).where(
                alert_rules.c.organization_id.in_(organization_ids), alert_rules.c.enabled))
                ).mappings():
            rule = Rule.from_row(row)
            by_org[rule.organization_id][None if rule.condition == OFFLINE
                                         else rule.key].append(rule)
        loaded = {o: dict(rules) for o, rules in by_org.items()}
        if generation == self._generation:  # else a change came meanwhile: kept for this use
            self._rules.update(loaded)
        return loaded

    async def _load_devices(self, conn: AsyncConnection, device_ids) -> dict:
        view = {d: self._devices.get(d) for d in device_ids}
        unknown = [d for d, info in view.items() if info is None]
        if not unknown:
            return view
        generation = self._generation
        groups = defaultdict(set)
        for row in await conn.execute(select(group_members.c.device_id, group_members.c.group_id)
                                      .where(group_members.c.device_id.in_(unknown))):
            groups[row.device_id].add(row.group_id)
        for row in await conn.execute(select(devices.c.id, devices.c.organization_id,
                                             devices.c.status, devices.c.site_id)
                                      .where(devices.c.id.in_(unknown))):
            view[row.id] = DeviceInfo(row.id, row.organization_id, row.status, row.site_id,
                                      frozenset(groups[row.id]))
        if generation == self._generation:
            self._devices.update({d: view[d] for d in unknown if view[d] is not None})
        return view

    async def on_readings(self, batch: ReadingsCommitted) -> None:
        """Evaluate a committed batch's new rows (the process that wrote it does).

        The per-row work is in C (``dict.fromkeys``, ``map``, ``compress``, ``min``/``max``):
        the batch's distinct sensors, each looked up once in the index of the rules that
        watch it; for a watched sensor, the low and high of its valid values. Only a rule
        those may change (reach its condition, or leave it) has its rows read in order, and
        only a change to an episode touches the database."""
        organization_ids = set(batch.organization_ids)
        if all(self._rules.get(o) == {} for o in organization_ids):
            return  # the usual case: no rule in these organizations
        if len(organization_ids) == 1:  # the usual case: its rules are not none (above)
            distinct = len(candidates := list(dict.fromkeys(batch.sensor_ids)))
        else:
            pairs = dict.fromkeys(zip(batch.sensor_ids, batch.organization_ids))
            distinct = len(pairs)  # a sensor is one organization's
            candidates = [sensor_id for sensor_id, organization_id in pairs
                          if self._rules.get(organization_id) != {}]
        watch = self._watch
        view = {sensor_id: watch.get(sensor_id) for sensor_id in candidates}
        if None in view.values():  # a sensor not seen since the rules changed: read, once
            view.update(await self._watching([s for s, w in view.items() if w is None],
                                             organization_ids))
        watched = {sensor_id: w for sensor_id, w in view.items() if w[1]}
        if not watched:
            return
        episodes = self._episodes
        if episodes is None:  # forgotten meanwhile (CachesStale): read again
            async with self.engine.connect() as conn:
                episodes = await self._load_episodes(conn)
        actions = []
        for sensor_id, ts, values, (device_id, rules) in self._rows(batch, watched, distinct):
            low, high = min(values), max(values)
            episode = f"s{sensor_id}"
            changing = [rule for rule in rules
                        if may_change(rule, (rule.id, episode) in episodes, low, high)]
            if changing:  # rarely: most batches change no episode
                actions.extend(self._evaluate_sensor(episodes, sensor_id, device_id, changing,
                                                     sorted(zip(ts, values))))
        if actions:
            await self._apply(actions)

    @staticmethod
    def _rows(batch: ReadingsCommitted, watched: dict, distinct: int):
        """(sensor id, times, values, watch) of each watched sensor's valid rows."""
        all_valid = all(batch.valid)
        if distinct == 1:  # one sensor in the whole batch (one device's key): its columns
            (sensor_id, watch), = watched.items()
            if all_valid:
                yield sensor_id, batch.ts, batch.values, watch
            else:
                values = list(compress(batch.values, batch.valid))
                if values:
                    yield sensor_id, list(compress(batch.ts, batch.valid)), values, watch
        elif (sensor_ids := batch.sensor_ids)[distinct:] == sensor_ids[:-distinct]:
            # The rows repeat one shape (a device's entries with the same keys, as most
            # bodies are; or every row another sensor, as a fleet's single readings): each
            # sensor's rows are every distinct-th, from its first.
            first = {sensor_id: j for j, sensor_id in enumerate(sensor_ids[:distinct])}
            for sensor_id, watch in watched.items():
                j = first[sensor_id]
                times, values = batch.ts[j::distinct], batch.values[j::distinct]
                if not all_valid:
                    valid = batch.valid[j::distinct]
                    times, values = list(compress(times, valid)), list(compress(values, valid))
                if values:
                    yield sensor_id, times, values, watch
        elif len(watched) <= _SELECTED_PASSES:  # a pass in C over the rows for each
            for sensor_id, watch in watched.items():
                chosen = list(map(sensor_id.__eq__, batch.sensor_ids))
                if not all_valid:
                    chosen = list(map(and_, chosen, batch.valid))
                values = list(compress(batch.values, chosen))
                if values:
                    yield sensor_id, list(compress(batch.ts, chosen)), values, watch
        else:  # many watched sensors (a fleet under organization-wide rules): one pass
            times, values = defaultdict(list), defaultdict(list)
            for sensor_id, ts, value, valid in zip(batch.sensor_ids, batch.ts, batch.values,
                                                   batch.valid):
                # Invalid readings (outside their valid range, tagged suspect...) never fire.
                if valid and sensor_id in watched:
                    times[sensor_id].append(ts)
                    values[sensor_id].append(value)
            for sensor_id, these in values.items():
                yield sensor_id, times[sensor_id], these, watched[sensor_id]

    async def _watching(self, sensor_ids: list[int], organization_ids) -> dict:
        """The index's entries of ``sensor_ids``: (device id, the enabled rules on the
        sensor's key whose scope covers its device; none while it is in maintenance). Kept
        for later batches unless the rules, devices or groups changed meanwhile; this batch
        uses them either way (an event dropping entries mid-batch must not make it skip
        rows)."""
        generation = self._generation
        rules, sensors, devices_ = await self._view(organization_ids, sensor_ids)
        found = {}
        for sensor_id in sensor_ids:
            known = sensors.get(sensor_id)
            device = known and devices_.get(known[0])
            if device is None:  # gone meanwhile: nothing watches it
                found[sensor_id] = (None, ())
                continue
            covering = () if device.status == MAINTENANCE else tuple(
                rule for rule in rules.get(device.organization_id, {}).get(known[1], ())
                if rule.covers(device))
            found[sensor_id] = (device.id, covering)
        if generation == self._generation:
            self._watch.update(found)
        return found

    def _evaluate_sensor(self, episodes: dict, sensor_id: int, device_id: int,
                         rules: list[Rule], items: list) -> list:
        """The episode changes of ``rules`` over one sensor's rows (in time order)."""
        episode = f"s{sensor_id}"
        actions = []
        for rule in rules:
            state = episodes.get((rule.id, episode), "clear")
            for ts, value in items:
                holds = breaches(rule, value)
                if holds and state == "clear":
                    state = "pending" if rule.for_seconds else "open"
                    actions.append((state, rule, episode, device_id, sensor_id, value, ts))
                elif not holds and state != "clear":
                    actions.append(("clear", rule, episode, device_id, sensor_id, value, ts))
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
