"""The platform's MQTT side, built in the lifespan when ``TELEMETRA_MQTT_URL`` is set: the
link to the broker, the consumer of device messages, presence, commands to devices and, with
``TELEMETRA_MQTT_AUTH=dynsec``, device logins at the broker."""

import asyncio
import fcntl
import logging
import re
import socket
import tempfile
from pathlib import Path
from typing import IO

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from telemetra.commands import service as commands
from telemetra.commands.events import CommandQueued
from telemetra.connectors import service as connectors
from telemetra.connectors.events import ConnectorsChanged
from telemetra.devices.events import DeviceChanged, DeviceKeyIssued
from telemetra.ingest.ingest import Ingestor
from telemetra.kit.events import EventBus
from telemetra.kit.timeutil import utcnow
from telemetra.mqtt.accounts import RESPONSE_TOPIC, BrokerAccounts
from telemetra.mqtt.consumer import Consumer, TopicConnector
from telemetra.mqtt.link import BrokerAddress, Inbound, Link
from telemetra.mqtt.presence import Presence
from telemetra.mqtt.topics import Topics
from telemetra.settings import MqttAuth, Settings

log = logging.getLogger("telemetra.mqtt")

PRESENCE_FLUSH_SECONDS = 1.0
DRAIN_SECONDS = 5.0
MAX_SLOTS = 256


def claim_client_id(base: str) -> tuple[str, IO]:
    """A client id that is the same after a restart (so the broker's persistent session, with
    the messages it kept meanwhile, is picked up again) and different for each process on
    this host (``serve --workers N``): the first free slot, held by a file lock."""
    directory = Path(tempfile.gettempdir()) / "telemetra-mqtt"
    directory.mkdir(exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", base)
    for slot in range(MAX_SLOTS):
        handle = open(directory / f"{safe}-{slot}.lock", "a+")  # noqa: SIM115 (held open)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        return f"{base}-{slot}", handle
    raise RuntimeError(f"more than {MAX_SLOTS} Telemetra processes share client id {base}")


class MqttBridge:
    def __init__(self, settings: Settings, engine: AsyncEngine, ingestor: Ingestor,
                 events: EventBus) -> None:
        assert settings.mqtt_url
        self.engine = engine
        self.auth = settings.mqtt_auth
        self.topics = Topics(settings.mqtt_prefix, settings.mqtt_share_group)
        base = settings.mqtt_client_id or f"telemetra-{socket.gethostname()}"[:48]
        client_id, self._slot_lock = claim_client_id(base)
        self.link = Link(BrokerAddress.from_url(settings.mqtt_url), client_id=client_id,
                         receive_maximum=settings.mqtt_receive_maximum,
                         session_expiry_seconds=settings.mqtt_session_expiry_seconds,
                         on_messages=self._on_messages, on_connected=self._on_connected,
                         on_disconnected=self._on_disconnected, ca_file=settings.mqtt_ca_file,
                         keepalive_seconds=settings.mqtt_keepalive_seconds)
        self.presence = Presence(engine, self.republish_pending)
        self.consumer = Consumer(engine, ingestor, self.topics, self.presence,
                                 max_payload_bytes=settings.max_body_bytes, ack=self.link.ack,
                                 current=self.link.current, republish=self.republish_pending,
                                 events=events)
        self.accounts = (BrokerAccounts(engine, self.topics, self.link.publish,
                                        lambda: self.link.connected,
                                        self.link.address.username)
                         if self.auth is MqttAuth.dynsec else None)
        self._tasks: set[asyncio.Task] = set()
        self._presence_task: asyncio.Task | None = None
        self._connector_filters: set[str] = set()
        self._reload_lock = asyncio.Lock()
        # Quick handlers (they queue an operation or a publication): called right after the
        # commit that made the change, whichever transport made it.
        events.subscribe(DeviceKeyIssued, self._key_issued, name="mqtt device login")
        # One process is enough to change a login or tell the others of new connector
        # topics (they hear it on the broker): not for changes relayed from elsewhere.
        events.subscribe(DeviceChanged, self._device_changed, name="mqtt device status",
                         here_only=True)
        events.subscribe(CommandQueued, self._command_queued, name="mqtt commands")
        events.subscribe(ConnectorsChanged, self._connectors_changed, name="mqtt connectors",
                         here_only=True)

    @property
    def status(self) -> str:
        return "connected" if self.link.connected else "down"

    async def start(self) -> None:
        filters = [*self.topics.uplink_filters(), self.topics.connectors_changed]
        if self.accounts is not None:
            filters.append(RESPONSE_TOPIC)
            self.accounts.start()
        self.link.subscribe(filters)
        await self.reload_connectors()
        self.link.start()
        self._presence_task = asyncio.create_task(self._flush_presence(), name="mqtt-presence")

    async def stop(self) -> None:
        await self.consumer.drain(DRAIN_SECONDS)
        if self._presence_task is not None:
            self._presence_task.cancel()
            await asyncio.gather(self._presence_task, return_exceptions=True)
        try:
            await self.presence.flush(every_mark=True)
        except Exception as exc:  # shutting down: the marks are only presence
            log.warning("last presence flush failed (%s)", type(exc).__name__)
        for task in list(self._tasks):
            task.cancel()
        if self.accounts is not None:
            await self.accounts.stop()
        await self.link.stop()
        self._slot_lock.close()

    # -- what committed changes make it do ----------------------------------------------

    def publish_command(self, message: dict) -> None:
        """Send a command to its device (QoS 1); the broker keeps it for a persistent
        session, and a device coming back online gets its queued commands again."""
        self.link.publish(self.topics.commands(message["device_id"]), orjson.dumps(message))

    def _command_queued(self, queued: CommandQueued) -> None:
        try:
            self.publish_command(queued.message)
        except Exception:
            # The command is stored and was answered 201 either way: the device still gets
            # it by polling, or when it is published again on reconnection.
            log.exception("command %s stored but not published over MQTT", queued.command_id)

    def _connectors_changed(self, changed: ConnectorsChanged) -> None:
        """Every platform process re-reads its connector subscriptions."""
        self._spawn(self.reload_connectors())
        self.link.publish(self.topics.connectors_changed, b"{}")

    def _key_issued(self, issued: DeviceKeyIssued) -> None:
        if self.accounts is not None:
            self.accounts.provision(issued.device_id, issued.key, active=issued.active)

    def device_key_seen(self, device_id: int, key: str) -> None:
        """A device showed its verified key over HTTP (telemetra.mqtt.accounts.key_seen)."""
        if self.accounts is not None:
            self.accounts.key_seen(device_id, key)

    def _device_changed(self, changed: DeviceChanged) -> None:
        if self.accounts is None:
            return
        if changed.deleted:
            self.accounts.remove(changed.device_id)
        elif changed.status_changed:
            self.accounts.set_active(changed.device_id, changed.status != "inactive")

    def metrics(self) -> dict:
        return {"status": self.status, "auth": self.auth.value,
                "client_id": self.link.client_id, "in_flight": self.consumer.in_flight,
                **self.consumer.counters.as_dict(),
                "broker_account_failures": self.accounts.failures if self.accounts else 0}

    # -- inside ----------------------------------------------------------------------------

    async def republish_pending(self, device_id: int) -> None:
        async with self.engine.connect() as conn:
            rows = await commands.pending_for_device(conn, device_id, utcnow())
        for row in rows:
            self.publish_command(commands.command_message(row))
        if rows:
            log.info("device %s is back: %d queued command(s) sent again", device_id, len(rows))

    async def reload_connectors(self) -> None:
        # One at a time: a reload that read the table earlier never applies after a later one.
        async with self._reload_lock:
            await self._reload_connectors()

    async def _reload_connectors(self) -> None:
        async with self.engine.connect() as conn:
            rows = await connectors.mqtt_topic_connectors(conn)
        self.consumer.connectors = [
            TopicConnector(id=row["id"], device_id=row["device_id"], topic=row["topic"],
                           key=row["key"], format=row["format"], byte_order=row["byte_order"],
                           max_age_seconds=row["max_age_seconds"]) for row in rows]
        wanted = {self.topics.shared(c.topic) for c in self.consumer.connectors}
        self.link.unsubscribe(sorted(self._connector_filters - wanted))
        self.link.subscribe(sorted(wanted - self._connector_filters))
        self._connector_filters = wanted

    def _on_messages(self, messages: list[Inbound]) -> None:
        for_consumer = []
        for message in messages:
            if message.topic == RESPONSE_TOPIC and self.accounts is not None:
                self.accounts.on_response(message.payload)
                self.link.ack(message)
            elif message.topic == self.topics.connectors_changed:
                self._spawn(self.reload_connectors())
                self.link.ack(message)
            else:
                for_consumer.append(message)
        if for_consumer:
            self.consumer.handle(for_consumer)

    def _on_connected(self, session_present: bool) -> None:
        if self.accounts is not None:
            self.accounts.connected()

    def _on_disconnected(self) -> None:
        if self.accounts is not None:
            self.accounts.disconnected()

    def _spawn(self, coroutine) -> None:
        async def logged() -> None:
            try:
                await coroutine
            except Exception:
                log.exception("MQTT background task failed")

        task = asyncio.create_task(logged())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush_presence(self) -> None:
        while True:
            await asyncio.sleep(PRESENCE_FLUSH_SECONDS)
            try:
                await self.presence.flush()
            except Exception as exc:
                log.warning("presence not written (%s); next try in %ss", type(exc).__name__,
                            PRESENCE_FLUSH_SECONDS)
