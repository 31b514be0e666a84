"""The live sockets of this process and what they subscribed to; committed events fanned out.

Every event handler here is a coroutine, so the bus gives it a queue and a task of its own:
publishers (the writer above all) never wait for a socket. A handler only ``push``es onto
connections' bounded queues (``outbox``), never awaits a client.

Readings: the hub subscribes to ``ReadingsCommitted`` only while some socket of this process
subscribes to readings, so with none the writer does not even build the event
(``EventBus.wants``), and it tells the bus which organizations' readings it wants from other
processes (``EventBus.set_interest``). Batches are sent at most every ``flush_seconds``
(TELEMETRA_LIVE_FLUSH_SECONDS): a batch alone is sent at once, and batches committed faster
than that are gathered into one message per device and subscription. One message per batch
cost a frame per socket per batch, and frames, not rows, are what a socket costs: at 200
sockets on one device and hundreds of batches a second, ingestion fell to a fifth.
Subscriptions that see the same rows share one encoded body.
"""

import asyncio
import logging
import time
from collections import defaultdict

import orjson
from sqlalchemy import exists, select

from telemetra.alerts.events import AlertChanged
from telemetra.commands.events import CommandChanged
from telemetra.db.relay import CachesStale
from telemetra.db.tables import devices, groups, sites
from telemetra.devices.events import DeviceChanged, DeviceStatusChanged
from telemetra.groups.events import GroupMembersChanged
from telemetra.ingest.events import ReadingsCommitted
from telemetra.kit.errors import Conflict, Invalid, NotFound, Unauthorized
from telemetra.kit.events import EventBus
from telemetra.live.auth import CLOSE_UNAUTHORIZED, authenticate
from telemetra.live.directory import Directory
from telemetra.live.outbox import Connection, SharedText, Subscription, message, now_iso
from telemetra.live.schemas import MAX_SUBSCRIPTIONS, TOPICS, Subscribe
from telemetra.sensors.events import SensorChanged
from telemetra.users.events import UserChanged

log = logging.getLogger("telemetra.live")

_SCOPES = (("device_id", devices, "device"), ("site_id", sites, "site"),
           ("group_id", groups, "group"))
_KEYED_TOPICS = ("readings", "alerts")


class Hub:
    def __init__(self, app, events: EventBus, *, queue_size: int = 1000,
                 flush_seconds: float = 0.1) -> None:
        self.app = app
        self.engine = app.state.engine
        self.events = events
        self.directory = Directory(self.engine)
        self.queue_size = queue_size
        self.flush_seconds = flush_seconds
        self._gathered: list[ReadingsCommitted] = []
        self._flusher: asyncio.Task | None = None
        self._flushed_at = 0.0
        self.connections: dict[int, Connection] = {}
        # topic -> organization -> subscriptions
        self._index: dict[str, dict[int, set[Subscription]]] = {t: {} for t in TOPICS}
        self._hearing_readings = False
        self.messages = 0  # messages queued for sockets

    def wire(self) -> None:
        """Subscribe to the events sockets are told of (in the lifespan, before any publish)."""
        bus = self.events
        bus.subscribe(DeviceStatusChanged, self._on_device_status, name="live device status")
        bus.subscribe(AlertChanged, self._on_alert, name="live alerts")
        bus.subscribe(CommandChanged, self._on_command, name="live commands")
        bus.subscribe(UserChanged, self._on_user, name="live users")
        bus.subscribe(CachesStale, self._on_stale, name="live, all")
        bus.subscribe(SensorChanged, lambda c: self.directory.forget_sensor(c.sensor_id),
                      name="live sensors")
        bus.subscribe(DeviceChanged, lambda c: self.directory.forget_device(c.device_id),
                      name="live devices")
        bus.subscribe(GroupMembersChanged, lambda _c: self.directory.forget_groups(),
                      name="live groups")

    async def stop(self) -> None:
        """At shutdown (the sockets are closed by then): stop a pending send of readings."""
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)

    # Connections and subscriptions

    def connect(self, send_text, user, token: str, expires_at: float,
                send_now=None) -> Connection:
        connection = Connection(send_text, user, token, expires_at, self.queue_size,
                                send_now)
        self.connections[connection.id] = connection
        return connection

    def disconnect(self, connection: Connection) -> None:
        self.connections.pop(connection.id, None)
        for subscription in list(connection.subscriptions.values()):
            self._drop(subscription)
        connection.subscriptions.clear()
        self._readings_changed()

    async def subscribe(self, connection: Connection, request: Subscribe) -> Subscription:
        """Add a subscription; ``Invalid``, ``Conflict`` or ``NotFound`` saying why not."""
        scopes = [(name, table, noun) for name, table, noun in _SCOPES
                  if getattr(request, name) is not None]
        if len(scopes) > 1:
            raise Invalid("name at most one of device_id, site_id and group_id",
                          loc=[scopes[1][0]])
        if request.keys is not None and request.topic not in _KEYED_TOPICS:
            raise Invalid(f"keys filter readings and alerts, not {request.topic}", loc=["keys"])
        if request.id is not None and request.id in connection.subscriptions:
            raise Conflict(f"subscription {request.id!r} exists already on this socket; "
                           "unsubscribe it first or use another id")
        if len(connection.subscriptions) >= MAX_SUBSCRIPTIONS:
            raise Invalid(f"a socket holds at most {MAX_SUBSCRIPTIONS} subscriptions")
        organization_id = connection.user.organization_id
        for name, table, noun in scopes:
            wanted = getattr(request, name)
            async with self.engine.connect() as conn:
                found = await conn.scalar(select(exists().where(
                    table.c.id == wanted, table.c.organization_id == organization_id)))
            if not found:  # another organization's is not found either
                raise NotFound(f"{noun} {wanted} not found")
        if connection.closing is not None:
            raise Unauthorized("this socket is closing")
        subscription = Subscription(
            id=request.id or connection.new_subscription_id(), topic=request.topic,
            connection=connection, device_id=request.device_id, site_id=request.site_id,
            group_id=request.group_id,
            keys=frozenset(request.keys) if request.keys is not None else None)
        if subscription.id in connection.subscriptions:  # taken while the scope was read
            raise Conflict(f"subscription {subscription.id!r} exists already on this socket")
        connection.subscriptions[subscription.id] = subscription
        self._index[subscription.topic].setdefault(organization_id, set()).add(subscription)
        if subscription.topic == "readings":
            self._readings_changed()
        return subscription

    def unsubscribe(self, connection: Connection, subscription_id: str) -> None:
        subscription = connection.subscriptions.pop(subscription_id, None)
        if subscription is None:
            raise NotFound(f"no subscription {subscription_id!r} on this socket")
        self._drop(subscription)
        self._readings_changed()

    def _drop(self, subscription: Subscription) -> None:
        by_org = self._index[subscription.topic]
        organization_id = subscription.connection.user.organization_id
        held = by_org.get(organization_id)
        if held is not None:
            held.discard(subscription)
            if not held:
                del by_org[organization_id]

    def _readings_changed(self) -> None:
        """Hear readings only while a socket wants them, and from others only for whom."""
        wanted = frozenset(self._index["readings"])
        if wanted != self.events.interest(ReadingsCommitted):
            self.events.set_interest(ReadingsCommitted, wanted)
        if wanted and not self._hearing_readings:
            self.events.subscribe(ReadingsCommitted, self._on_readings, name="live readings")
            self._hearing_readings = True
        elif not wanted and self._hearing_readings:
            self.events.unsubscribe(ReadingsCommitted, self._on_readings)
            self._hearing_readings = False

    # Fan-out

    def _push(self, subscription: Subscription, text: str) -> None:
        self.messages += 1
        subscription.connection.push(text)

    async def _matching(self, topic: str, organization_id: int, device_id: int,
                        key: str | None = None) -> list[Subscription]:
        held = self._index[topic].get(organization_id)
        if not held:
            return []
        held = list(held)
        info = None
        if any(s.needs_device for s in held):
            info = (await self.directory.devices([device_id])).get(device_id)
        return [s for s in held if s.covers(device_id, info)
                and (s.keys is None or key in s.keys)]

    async def _on_readings(self, batch: ReadingsCommitted) -> None:
        """Gather batches; one fan-out per ``flush_seconds`` at most takes all gathered."""
        self._gathered.append(batch)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="live-readings-flush")

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._gathered:
            wait = self._flushed_at + self.flush_seconds - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            batches, self._gathered = self._gathered, []
            self._flushed_at = loop.time()
            try:
                await self._fan_out(batches)
            except Exception:  # the database (a lookup), say: these are lost, not the next
                log.exception("live readings could not be sent")

    async def _fan_out(self, batches: list[ReadingsCommitted]) -> None:
        index = self._index["readings"]
        rows_of: dict[int, list[tuple[ReadingsCommitted, int]]] = defaultdict(list)
        organization_of: dict[int, int] = {}
        for batch in batches:
            for i, organization_id in enumerate(batch.organization_ids):
                if organization_id in index:
                    device_id = batch.device_ids[i]
                    rows_of[device_id].append((batch, i))
                    organization_of[device_id] = organization_id
        if not rows_of:
            return
        sensor_info = await self.directory.sensors(
            {batch.sensor_ids[i] for rows in rows_of.values() for batch, i in rows})
        needs_devices = any(s.needs_device for held in index.values() for s in held)
        device_info = await self.directory.devices(rows_of) if needs_devices else {}
        for device_id, rows in rows_of.items():
            held = index.get(organization_of[device_id])
            if not held:
                continue
            items = _items(rows, sensor_info)
            info = device_info.get(device_id)
            # What a kind of subscription gets, encoded once, and each whole message once per
            # subscription id: sockets' first subscriptions are all "s1", so 200 dashboards on
            # one device share one text (and its bytes, ``SharedText``).
            bodies: dict[tuple, str | None] = {}
            texts: dict[tuple, SharedText] = {}
            for subscription in list(held):
                if not subscription.covers(device_id, info):
                    continue
                admin = subscription.connection.sees_invalid
                kind = (subscription.keys, admin)
                if kind not in bodies:
                    bodies[kind] = _readings_body(device_id, items, subscription.keys, admin)
                body = bodies[kind]
                if body is None:
                    continue
                named = (kind, subscription.quoted_id)
                text = texts.get(named)
                if text is None:
                    text = texts[named] = SharedText(
                        '{"type":"readings","subscription":' + subscription.quoted_id + ","
                        + body)
                self._push(subscription, text)

    async def _on_device_status(self, changed: DeviceStatusChanged) -> None:
        device = {"id": changed.device_id, "name": changed.name, "online": changed.online,
                  "status": changed.status, "last_seen": changed.last_seen}
        for subscription in await self._matching("device-status", changed.organization_id,
                                                  changed.device_id):
            self._push(subscription, message("device-status", subscription=subscription.id,
                                             device=device))

    async def _on_alert(self, changed: AlertChanged) -> None:
        for subscription in await self._matching("alerts", changed.organization_id,
                                                  changed.device_id, changed.alert.get("key")):
            self._push(subscription, message("alert", subscription=subscription.id,
                                             change=changed.change, alert=changed.alert))

    async def _on_command(self, changed: CommandChanged) -> None:
        for subscription in await self._matching("commands", changed.organization_id,
                                                  changed.device_id):
            self._push(subscription, message("command", subscription=subscription.id,
                                             command=changed.command))

    # Credentials: a socket lives only as long as its token and its user's access

    async def _on_user(self, changed: UserChanged) -> None:
        await self._recheck_many([c for c in list(self.connections.values())
                                  if c.user.id == changed.user_id])

    async def _on_stale(self, _stale: CachesStale) -> None:
        self.directory.clear()
        await self.recheck_all()  # a UserChanged may be among what was missed

    async def recheck_all(self) -> None:
        """Check every socket's token again (a periodic job: what no event told, an expiry)."""
        await self._recheck_many(list(self.connections.values()))

    async def _recheck_many(self, connections: list[Connection]) -> None:
        """``recheck`` each of ``connections``, a token once however many sockets share it
        (a dashboard's sockets do: 200 sockets were 200 queries a period, now one)."""
        by_token: dict[str, list[Connection]] = defaultdict(list)
        for connection in connections:
            if connection.closing is None:
                by_token[connection.token].append(connection)
        for token, held in by_token.items():  # one at a time: one pooled connection
            await self._recheck_token(token, held)

    async def recheck(self, connection: Connection) -> None:
        """Close ``connection`` (4401) if its token no longer works; else take the user's
        role as it is now (an admin demoted stops seeing invalid readings)."""
        if connection.closing is None:
            await self._recheck_token(connection.token, [connection])

    async def _recheck_token(self, token: str, connections: list[Connection]) -> None:
        try:
            user, _ = await authenticate(self.app, token)
        except Unauthorized as exc:
            for connection in connections:
                connection.close(CLOSE_UNAUTHORIZED, exc.detail)
            return
        except Exception:  # the database, say: keep the sockets; the next check decides
            log.warning("a live socket's token could not be checked again", exc_info=True)
            return
        for connection in connections:
            if connection.token == token:  # not renewed while this was read
                connection.user = user


def _items(rows: list[tuple[ReadingsCommitted, int]], sensor_info: dict) -> list[dict]:
    items = []
    for batch, i in rows:
        sensor_id = batch.sensor_ids[i]
        info = sensor_info.get(sensor_id)
        if info is None:  # deleted since it was written
            continue
        ts = batch.ts[i]
        items.append({"sensor_id": sensor_id, "key": info.key, "ts": _iso_micros(ts),
                      "value": batch.values[i], "unit": info.unit, "valid": batch.valid[i]})
    return items


def _readings_body(device_id: int, items: list[dict], keys: frozenset[str] | None,
                   admin: bool) -> str | None:
    """The message after its ``type`` and ``subscription`` (as JSON text without its ``{``),
    or None when none of ``items`` is for such a subscription."""
    chosen = [item for item in items
              if (admin or item["valid"]) and (keys is None or item["key"] in keys)]
    if not chosen:
        return None
    return orjson.dumps({"ts": now_iso(), "device_id": device_id, "items": chosen}).decode()[1:]


def _iso_micros(micros: int) -> str:
    seconds, fraction = divmod(micros, 1_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{fraction:06d}Z" if fraction else f"{stamp}Z"
