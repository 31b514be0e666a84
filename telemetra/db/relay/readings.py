"""The writer's ``ReadingsCommitted`` to the other processes that asked for them (live views).

A unit of work's events cross processes through the relay, in their transaction. The writer's
committed readings do not: they come at up to tens of thousands of rows a second and only a
live view (a socket held by another process) wants them. So each process announces, with its
relay heartbeat, the organizations it wants readings of (``EventBus.set_interest``), and this
module sends every live peer the rows of those organizations alone, after the commit, and
nothing at all while nobody elsewhere asked (the writer then does not even build the event:
``EventBus.wants``). The receiving process publishes them to its own subscribers
(``publish(events, remote=True)``), keeping only the organizations it still wants.

Best effort, never in the writer's way: the bus hands a batch to a bounded queue
(``QUEUE_BATCHES``; past it batches are dropped, counted in ``dropped`` and logged) and a task
of its own encodes and sends. Transports, one interface (``send(target, payloads)``):

- **Redis** pub/sub when ``TELEMETRA_REDIS_URL`` is set: a channel per process.
- **PostgreSQL** NOTIFY on a channel per process, after the commit, in parts of under
  8,000 bytes (the parts of one transaction arrive together and in order).
- **SQLite**: a row per batch and target in ``relayed_readings``, polled every 50 ms by its
  target and kept ``KEEP_SECONDS``.
"""

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections import deque

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from telemetra.db.relay.base import Relay
from telemetra.ingest.events import ReadingsCommitted
from telemetra.kit.events import EventBus

log = logging.getLogger("telemetra.relay.readings")

NAME = ReadingsCommitted.event_name
QUEUE_BATCHES = 256  # batches waiting to be sent; past it they are dropped
PG_PART_BYTES = 7_900
KEEP_SECONDS = 30.0
POLL_SECONDS = 0.05
BACKOFF_SECONDS = (0.1, 5.0)
SUBSCRIBE_SECONDS = 5.0  # how long start waits for its Redis channel (down: it goes on)


def only(batch: ReadingsCommitted, organizations: frozenset[int]) -> ReadingsCommitted | None:
    """The rows of ``batch`` in ``organizations`` (None if none)."""
    present = set(batch.organization_ids)
    if present <= organizations:
        return batch
    if not present & organizations:
        return None
    keep = [i for i, org in enumerate(batch.organization_ids) if org in organizations]
    return ReadingsCommitted(*(tuple([column[i] for i in keep]) for column in _columns(batch)))


def _columns(batch: ReadingsCommitted) -> tuple:
    return (batch.sensor_ids, batch.device_ids, batch.organization_ids, batch.ts,
            batch.values, batch.valid, batch.tags)


def encode_rows(batch: ReadingsCommitted) -> str:
    """The batch as ASCII JSON columns (ASCII: parts can be cut at any character)."""
    data = orjson.dumps(_columns(batch))
    if data.isascii():
        return data.decode("ascii")
    return json.dumps(_columns(batch), ensure_ascii=True, separators=(",", ":"))


def decode_rows(payload: str | bytes) -> ReadingsCommitted:
    """What ``encode_rows`` wrote; raises ``ValueError``/``TypeError``."""
    sensors, devices, orgs, ts, values, valid, tags = orjson.loads(payload)
    return ReadingsCommitted(tuple(sensors), tuple(devices), tuple(orgs), tuple(ts),
                             tuple(values), tuple(valid),
                             tuple(None if t is None else tuple(t) for t in tags))


class ReadingsBroadcast:
    """Committed readings to the peers that asked for their organizations, and back."""

    def __init__(self, relay: Relay, bus: EventBus, transport) -> None:
        self.relay, self.bus, self.transport = relay, bus, transport
        self.sent_rows = 0
        self.received_rows = 0
        self.dropped = 0  # batches not sent: the queue was full, or sending failed
        self._queue: deque = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._failing = False

    async def start(self) -> None:
        await self.transport.start(self.relay.origin, self._received)
        self.bus.subscribe(ReadingsCommitted, self._committed, here_only=True,
                           name="readings to other processes", active=self.wanted)
        self._task = asyncio.create_task(self._send(), name="readings-broadcast")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.transport.stop()

    def wanted(self) -> bool:
        """Whether another live process asked for readings of any organization."""
        return bool(self.relay.interested(NAME))

    def _committed(self, batch: ReadingsCommitted) -> None:
        targets = self.relay.interested(NAME)
        if not targets or not len(batch):
            return
        if len(self._queue) >= QUEUE_BATCHES:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("readings for other processes are behind: %d batches dropped",
                            self.dropped)
            return
        self._queue.append((batch, targets))
        self._wake.set()

    async def _send(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batches, self._queue = self._queue, deque()
                outgoing: dict[str, list[str]] = {}
                rows: dict[str, int] = {}
                for batch, targets in batches:
                    encoded: dict[frozenset[int], tuple[str, int] | None] = {}
                    for target, organizations in targets.items():
                        if organizations not in encoded:
                            part = only(batch, organizations)
                            encoded[organizations] = (part and (encode_rows(part), len(part)))
                        if encoded[organizations]:
                            payload, n = encoded[organizations]
                            outgoing.setdefault(target, []).append(payload)
                            rows[target] = rows.get(target, 0) + n
                for target, payloads in outgoing.items():
                    try:
                        await self.transport.send(target, payloads)
                        self.sent_rows += rows[target]
                        self._failing = False
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        self.dropped += len(payloads)
                        if not self._failing:  # once, not for every batch while it lasts
                            log.warning("readings could not be sent to another process (%s); "
                                        "dropped until it works again", exc.__class__.__name__)
                        self._failing = True

    def _received(self, payload: str | bytes) -> None:
        try:
            batch = decode_rows(payload)
        except (ValueError, TypeError) as exc:
            log.warning("undecodable readings from another process (%r)", exc)
            return
        batch = only(batch, self.bus.interest(ReadingsCommitted))
        if batch is not None:
            self.received_rows += len(batch)
            self.bus.publish([batch], remote=True)


class RedisTransport:
    """Redis pub/sub: a channel per process, ``telemetra:readings:<origin>``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client = None
        self._task: asyncio.Task | None = None
        self._tried = asyncio.Event()  # the first subscription worked, or failed

    @staticmethod
    def channel(origin: str) -> str:
        return f"telemetra:readings:{origin}"

    async def start(self, origin: str, deliver) -> None:
        import redis.asyncio as redis

        self._client = redis.Redis.from_url(self.url)
        self._task = asyncio.create_task(self._listen(self.channel(origin), deliver),
                                         name="readings-redis")
        # Subscribed before this process can ask for readings: what a peer sends on hearing
        # the interest must find the channel listened to, not be lost before it is.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SUBSCRIBE_SECONDS):
                await self._tried.wait()

    async def _listen(self, channel: str, deliver) -> None:
        delay = BACKOFF_SECONDS[0]
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(channel)
                self._tried.set()
                delay = BACKOFF_SECONDS[0]
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message["type"] == "message":
                        deliver(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._tried.set()
                log.warning("redis subscription lost (%s); again in %.1fs",
                            exc.__class__.__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_SECONDS[1])
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def send(self, target: str, payloads: list[str]) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            for payload in payloads:
                pipe.publish(self.channel(target), payload)
            await pipe.execute()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()


class PostgresTransport:
    """NOTIFY on ``telemetra_r_<origin>``, listened to on the relay's connection."""

    def __init__(self, engine: AsyncEngine, relay) -> None:
        self.engine, self.relay = engine, relay
        self.origin = ""
        self._seq = itertools.count()
        self._parts: dict[tuple[str, str], list[str]] = {}
        self._deliver = None

    @staticmethod
    def channel(origin: str) -> str:
        return f"telemetra_r_{origin}"

    async def start(self, origin: str, deliver) -> None:
        self.origin, self._deliver = origin, deliver
        await self.relay.listen(self.channel(origin), self._on_notify)

    async def send(self, target: str, payloads: list[str]) -> None:
        notes = []
        for payload in payloads:
            seq = next(self._seq)
            parts = [payload[i:i + PG_PART_BYTES]
                     for i in range(0, len(payload), PG_PART_BYTES)]
            notes += [f"{self.origin} {seq} {i} {len(parts)} {part}"
                      for i, part in enumerate(parts)]
        async with self.engine.begin() as conn:
            # One statement, one round trip, however many parts.
            await conn.execute(text("SELECT pg_notify(:channel, note) "
                                    "FROM unnest(CAST(:notes AS text[])) AS note"),
                               {"channel": self.channel(target), "notes": notes})

    def _on_notify(self, payload: str) -> None:
        try:
            sender, seq, index, count, part = payload.split(" ", 4)
            index, count = int(index), int(count)
        except ValueError:
            return
        if count == 1:
            self._deliver(part)
            return
        parts = self._parts.setdefault((sender, seq), [])
        if index != len(parts):
            del self._parts[(sender, seq)]
            return
        parts.append(part)
        if len(parts) == count:
            del self._parts[(sender, seq)]
            self._deliver("".join(parts))

    async def stop(self) -> None:
        self._parts.clear()


class SqliteTransport:
    """A row per batch and target in ``relayed_readings``; each process polls its own."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.origin = ""
        self.last = 0
        self._reader = self._writer = None
        self._task: asyncio.Task | None = None
        self._pruned = 0.0

    async def start(self, origin: str, deliver) -> None:
        from telemetra.db.relay.sqlite import connect

        self.origin = origin
        self._reader = await connect(self.database)
        self._writer = await connect(self.database)
        rows = await self._reader.execute_fetchall(
            "SELECT COALESCE(MAX(id), 0) FROM relayed_readings")
        self.last = rows[0][0]
        self._task = asyncio.create_task(self._poll(deliver), name="readings-sqlite")

    async def _poll(self, deliver) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                rows = await self._reader.execute_fetchall(
                    "SELECT id, payload FROM relayed_readings WHERE target = ? AND id > ? "
                    "ORDER BY id LIMIT 100", (self.origin, self.last))
            except Exception as exc:
                log.warning("polling for readings failed (%s)", exc.__class__.__name__)
                continue
            for row_id, payload in rows:
                self.last = row_id
                deliver(payload)

    async def send(self, target: str, payloads: list[str]) -> None:
        now = time.time()
        await self._writer.execute("BEGIN IMMEDIATE")
        try:
            await self._writer.executemany(
                "INSERT INTO relayed_readings (target, payload, created_at) VALUES (?, ?, ?)",
                [(target, payload, now) for payload in payloads])
            if now - self._pruned > KEEP_SECONDS / 3:
                self._pruned = now
                await self._writer.execute("DELETE FROM relayed_readings WHERE created_at < ?",
                                           (now - KEEP_SECONDS,))
            await self._writer.execute("COMMIT")
        except BaseException:
            await self._writer.execute("ROLLBACK")
            raise

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for db in (self._reader, self._writer):
            if db is not None:
                await db.close()


def readings_broadcast(engine: AsyncEngine, relay: Relay | None, bus: EventBus,
                       redis_url: str = "") -> ReadingsBroadcast | None:
    """The broadcast for this deployment (None with one process only: no relay)."""
    if relay is None:
        return None
    if redis_url:
        transport = RedisTransport(redis_url)
    elif engine.dialect.name == "postgresql":
        transport = PostgresTransport(engine, relay)
    else:
        transport = SqliteTransport(engine.url.database)
    return ReadingsBroadcast(relay, bus, transport)
