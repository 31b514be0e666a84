"""What the platform does with each message from the broker.

Device readings read together are handled together (their devices and uncached sensors
looked up in one query each, one durable write), other messages each in a task of its own;
every message is acknowledged only when handling has finished: readings once committed by
the group-commit writer, the same path as HTTP. A bad message
(invalid JSON, an unknown format or device, too large...) is logged with its reason, counted,
written to its device's log when there is a device, and acknowledged, so it is never
redelivered forever. While storage is unavailable or saturated a message is retried, not
acknowledged; the broker stops sending once Receive Maximum messages await an acknowledgement.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable

from paho.mqtt.client import topic_matches_sub
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine

from telemetra.auth.principals import AuthDevice
from telemetra.commands import service as commands
from telemetra.devices import service as devices
from telemetra.devices.schemas import Heartbeat, LogCreate, LogLevel
from telemetra.ingest.ingest import (
    DEVICE,
    DeviceInfo,
    Ingestor,
    NothingStored,
    Source,
    Target,
)
from telemetra.kit.db import write_transaction
from telemetra.kit.errors import Conflict, Invalid, NotFound, TelemetraError, Unavailable
from telemetra.kit.events import EventBus
from telemetra.kit.timeutil import utcnow
from telemetra.mqtt.link import Inbound
from telemetra.mqtt.messages import (
    Counters,
    Rejected,
    TopicConnector,
    first_error,
    json_body,
    reason_kind,
)
from telemetra.mqtt.presence import Presence
from telemetra.mqtt.topics import Topics, Uplink
from telemetra.system.metrics import INGESTED, MQTT_MESSAGES, MQTT_REJECTED

log = logging.getLogger("telemetra.mqtt")

RETRY_MIN_SECONDS = 0.05
RETRY_MAX_SECONDS = 2.0
_LOGS = TypeAdapter(LogCreate | list[LogCreate])


def _transient(exc: BaseException) -> bool:
    """Storage trouble that passes: retry the message rather than drop it. Every pooled
    connection busy (the pool's wait timed out) is such trouble: under load it was a message
    acknowledged and dropped as an "internal error"."""
    if isinstance(exc, Unavailable | OSError | OperationalError | InterfaceError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


class _ConnectionGone(Exception):
    """The messages' connection is gone: they are not acknowledged, the broker redelivers."""


class Consumer:
    def __init__(self, engine: AsyncEngine, ingestor: Ingestor, topics: Topics,
                 presence: Presence, *, max_payload_bytes: int,
                 ack: Callable[[Inbound], None], current: Callable[[Inbound], bool],
                 republish: Callable[[int], Awaitable[None]],
                 events: EventBus | None = None) -> None:
        self.engine = engine
        self.ingestor = ingestor
        self.topics = topics
        self.presence = presence
        self.max_payload_bytes = max_payload_bytes
        self.counters = Counters()
        self.connectors: list[TopicConnector] = []
        self._ack = ack
        self._current = current
        self._republish = republish
        self.events = events  # what MQTT messages change is published there after commit
        self._tasks: set[asyncio.Task] = set()
        self._stopping = False

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def handle(self, messages: list[Inbound]) -> None:
        """Called on the event loop with the messages read together; never blocks. Device
        readings are stored together (one write for the lot, then one acknowledgement
        each); other messages are handled one by one."""
        if self._stopping:
            return  # not acknowledged: the broker delivers them again
        self.counters.received += len(messages)
        MQTT_MESSAGES.inc(len(messages))
        readings: list[tuple[Inbound, int]] = []
        for message in messages:
            uplink = self.topics.parse(message.topic)
            if (uplink is not None and uplink.kind == "readings"
                    and len(message.payload) <= self.max_payload_bytes):
                readings.append((message, uplink.device_id))
            else:
                self._spawn(self._process(message))
        if readings:
            self._spawn(self._readings_or_alone(readings))

    async def _readings_or_alone(self, batch: list[tuple[Inbound, int]]) -> None:
        """``_process_readings``; should it fail for a bug, the messages it has not finished
        are handled alone, so none is left unacknowledged on a live connection."""
        left = {id(message): message for message, _ in batch}
        try:
            await self._process_readings(batch, left)
        except Exception:
            log.exception("MQTT batch of %d messages failed; %d handled alone", len(batch),
                          len(left))
            self._alone(list(left.values()))

    def _spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task) -> None:
        # A task that failed leaves its messages unacknowledged: they hold places of the
        # link's window until the connection drops, and the link does not drop a connection
        # it holds back on purpose. So it is said, never silent.
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("MQTT message handling failed; its messages wait for redelivery",
                      exc_info=task.exception())

    async def _process_readings(self, batch: list[tuple[Inbound, int]],
                                left: dict[int, Inbound]) -> None:
        """Prepare the messages' bodies together (their devices, and the sensors no cache
        holds, each read in one query for the whole batch), then one durable write for all
        of them, then the acks. A message that cannot be used is rejected alone; if preparing
        or the write fails for another reason than a rejection, each message is retried
        alone so one bad message cannot take the others with it."""
        now = utcnow()
        try:
            known = await self.ingestor.devices_of(device_id for _, device_id in batch)
        except Exception:  # storage trouble: each message alone, retried until it passes
            self._alone(message for message, _ in batch)
            left.clear()
            return
        usable: list[tuple[Inbound, int, Target, object]] = []
        for message, device_id in batch:
            try:
                device = _usable(known.get(device_id), device_id)
                usable.append((message, device_id, device.target, json_body(message.payload)))
            except Rejected as refused:
                await self._reject(message, refused.reason)
                del left[id(message)]
                self._done(message)
        if not usable:
            return
        try:
            outcomes = await self.ingestor.prepare_many(
                [(target, body) for _, _, target, body in usable], DEVICE, now=now)
        except Exception:
            self._alone(message for message, _, _, _ in usable)
            left.clear()
            return
        prepared = []
        for (message, device_id, _, _), outcome in zip(usable, outcomes, strict=True):
            if isinstance(outcome, Invalid):
                await self._reject(message, self._reason(device_id, outcome))
                del left[id(message)]
                self._done(message)
            elif isinstance(outcome, Exception):  # storage trouble creating sensors, or a bug
                self._alone([message])
                del left[id(message)]
            else:
                if outcome.rejected:
                    self._note_rejected_readings(device_id, outcome.rejected)
                prepared.append((message, device_id, outcome))
        if not prepared:
            return
        try:
            stored = await self._retrying([m for m, _, _ in prepared],
                                          lambda: self.ingestor.commit(
                                              [body for _, _, body in prepared]))
        except _ConnectionGone:  # not acknowledged: the broker delivers them again
            left.clear()
            return
        except Exception:
            self._alone(message for message, _, _ in prepared)
            left.clear()
            return
        self.counters.readings_accepted += stored.accepted
        self.counters.readings_duplicate += stored.duplicates
        INGESTED["mqtt"].inc(stored.accepted)
        for message, device_id, _ in prepared:
            self.presence.mark(device_id)
            del left[id(message)]
            self._done(message)

    def _alone(self, messages) -> None:
        """Handle each message on its own (``_process``: retried while storage is down)."""
        for message in messages:
            self._spawn(self._process(message))

    def _reason(self, device_id: int, refused: Rejected | Invalid) -> str:
        """Why a message's readings are not stored; its readings are counted rejected."""
        if isinstance(refused, Rejected):
            return refused.reason
        if isinstance(refused, NothingStored):
            self._note_rejected_readings(device_id, refused.rejected)
            return refused.detail
        if refused.detail.startswith("unknown field"):  # strict input: the field is named
            return refused.detail
        return f"unknown format: {refused.detail}"

    async def _retrying(self, messages: list[Inbound], attempt):
        """``attempt()`` until it succeeds or fails for good; storage trouble is retried with
        back-off, unacknowledged, for as long as the messages' connection is up."""
        delay = RETRY_MIN_SECONDS
        while True:
            try:
                return await attempt()
            except Exception as exc:
                if not _transient(exc):
                    raise
                if not any(self._current(message) for message in messages):
                    raise _ConnectionGone() from None
                self.counters.retries += 1
                log.debug("MQTT messages wait for storage (%s)", type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)

    def _done(self, message: Inbound) -> None:
        self.counters.handled += 1
        self._ack(message)

    def _note_rejected_readings(self, device_id: int, rejected: list) -> None:
        self.counters.readings_rejected += len(rejected)
        reasons = sorted({r.reason for r in rejected})
        log.info("MQTT readings of device %s: %d rejected (%s)", device_id, len(rejected),
                 "; ".join(reasons))

    async def drain(self, timeout: float) -> None:
        """Stop taking messages; let those in hand finish (and be acknowledged)."""
        self._stopping = True
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
        for task in list(self._tasks):
            task.cancel()

    async def _process(self, message: Inbound) -> None:
        try:
            await self._retrying([message], lambda: self._route(message))
        except _ConnectionGone:
            return
        except Rejected as rejected:
            await self._reject(message, rejected.reason)
        except Exception:
            log.exception("MQTT message on %s failed; acknowledged and dropped", message.topic)
            self._count_rejection("internal error")
        self._done(message)

    async def _route(self, message: Inbound) -> None:
        if len(message.payload) > self.max_payload_bytes:
            raise Rejected(f"payload too large ({len(message.payload)} bytes, "
                           f"limit {self.max_payload_bytes})")
        uplink = self.topics.parse(message.topic)
        if uplink is not None:
            await self._uplink(uplink, message.payload)
            return
        matched = [c for c in self.connectors if topic_matches_sub(c.topic, message.topic)]
        if not matched:
            raise Rejected("not a platform topic")
        for connector in matched:
            await self._connector_readings(connector, message.payload)

    async def _device(self, device_id: int) -> DeviceInfo:
        return _usable(await self.ingestor.device(device_id), device_id)

    async def _uplink(self, uplink: Uplink, payload: bytes) -> None:
        device = await self._device(uplink.device_id)
        if uplink.kind == "readings":
            await self._store(device, json_body(payload))
        elif uplink.kind == "heartbeat":
            await self._heartbeat(device, payload)
        elif uplink.kind == "logs":
            await self._logs(device, payload)
        elif uplink.kind == "status":
            await self._status(device, payload)
        else:
            await self._result(device, uplink.command_id, payload)
        if uplink.kind not in ("heartbeat", "status"):
            self.presence.mark(uplink.device_id)

    async def _store(self, device: DeviceInfo, body, source: Source = DEVICE) -> None:
        try:
            prepared = await self.ingestor.prepare(device.target, body, source)
        except Invalid as invalid:
            raise Rejected(self._reason(device.target.device_id, invalid)) from None
        stored = await self.ingestor.commit([prepared])
        if prepared.rejected:
            self._note_rejected_readings(device.target.device_id, prepared.rejected)
        self.counters.readings_accepted += stored.accepted
        INGESTED["mqtt"].inc(stored.accepted)
        self.counters.readings_duplicate += stored.duplicates

    async def _connector_readings(self, connector: TopicConnector, payload: bytes) -> None:
        device = await self._device(connector.device_id)
        await self._store(device, json_body(payload), connector.source)
        self.presence.mark(connector.device_id)

    @staticmethod
    def _principal(device: DeviceInfo) -> AuthDevice:
        return AuthDevice(id=device.target.device_id,
                          organization_id=device.target.organization_id, status=device.status)

    async def _heartbeat(self, device: DeviceInfo, payload: bytes) -> None:
        body = None
        if payload.strip():
            try:
                body = Heartbeat.model_validate(json_body(payload))
            except ValidationError as exc:
                raise Rejected(f"invalid heartbeat: {first_error(exc)}") from None
        await self._in_transaction(devices.heartbeat, self._principal(device),
                                   device.target.device_id, body)

    async def _logs(self, device: DeviceInfo, payload: bytes) -> None:
        try:
            entries = _LOGS.validate_python(json_body(payload))
        except ValidationError as exc:
            raise Rejected(f"invalid log lines: {first_error(exc)}") from None
        entries = entries if isinstance(entries, list) else [entries]
        await self._in_transaction(devices.add_logs, self._principal(device),
                                   device.target.device_id, entries)

    async def _status(self, device: DeviceInfo, payload: bytes) -> None:
        text = payload.decode("utf-8", "replace").strip().strip('"').lower()
        if text.startswith("{"):
            body = json_body(payload)
            state = body.get("status", body.get("online")) if isinstance(body, dict) else None
            text = {True: "online", False: "offline"}.get(state, str(state).lower())
        if text == "offline":
            await self.presence.offline(device.target.device_id)
        elif text == "online":
            await self._in_transaction(_touch, device)
            await self._republish(device.target.device_id)
        else:
            raise Rejected("status must be online or offline")

    async def _result(self, device: DeviceInfo, command_id: int, payload: bytes) -> None:
        body = json_body(payload)
        if not isinstance(body, dict) or body.get("status") not in (
                "delivered", "succeeded", "failed"):
            raise Rejected("a command result is {\"status\": delivered, succeeded or failed, "
                           "\"result\"?: ...}")
        try:
            await self._in_transaction(commands.record_result, device.target.organization_id,
                                       device.target.device_id, command_id, body["status"],
                                       body.get("result"))
        except (NotFound, Conflict) as exc:
            raise Rejected(exc.detail) from None

    async def _in_transaction(self, function, *args) -> None:
        try:
            async with write_transaction(self.engine, self.events) as conn:
                await function(conn, *args)
        except TelemetraError as exc:
            if isinstance(exc, Unavailable | NotFound | Conflict):
                raise
            raise Rejected(exc.detail) from None

    def _count_rejection(self, reason: str, device_id: int | None = None) -> None:
        self.counters.rejected[reason] += 1
        MQTT_REJECTED.labels(reason=reason).inc()
        if device_id is not None:
            self.counters.rejected_by_device[device_id] += 1

    async def _reject(self, message: Inbound, reason: str) -> None:
        uplink = self.topics.parse(message.topic)
        device_id = uplink.device_id if uplink is not None else None
        log.warning("MQTT message on %s rejected: %s", message.topic, reason)
        self._count_rejection(reason_kind(reason), device_id)
        if device_id is None or reason.startswith("unknown device"):
            return
        try:
            device = await self.ingestor.device(device_id)
            if device is not None:
                line = LogCreate(level=LogLevel.warning,
                                 message=f"MQTT message on {message.topic} rejected: {reason}")
                await self._in_transaction(devices.add_logs, self._principal(device), device_id,
                                           [line])
        except Exception as exc:  # the count and the log line above still stand
            log.warning("could not write the rejection to device %s's log (%s)", device_id,
                        type(exc).__name__)


def _usable(device: DeviceInfo | None, device_id: int) -> DeviceInfo:
    """The device, if messages may be taken from it."""
    if device is None:
        raise Rejected(f"unknown device {device_id}")
    if device.status == "inactive":
        raise Rejected(f"device {device_id} is inactive")
    return device


async def _touch(conn, device: DeviceInfo) -> None:
    await devices.touch(conn, await devices.get_device(conn, device.target.organization_id,
                                                       device.target.device_id))
