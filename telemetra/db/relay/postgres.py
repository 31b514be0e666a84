"""The relay on PostgreSQL: NOTIFY in the unit of work; one LISTENing connection per process.

A unit's events go in one notification on ``CHANNEL``, or in parts when they exceed a
notification's ~8,000 bytes (parts of a transaction arrive together and in order). The header
is ``origin seq index count``; a ``seq`` ending in ``!`` asks every peer to acknowledge the
unit once applied (``answer_when_everywhere``). Peers speak on ``PEERS_CHANNEL``:
``hb origin {interests}`` every heartbeat, ``ack origin writer seq``, ``bye origin`` when a
process stops. The listener pings its connection and reconnects with back-off when it drops.
"""

import asyncio
import contextlib
import itertools
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from telemetra.db.relay.base import Peer, Relay, decode_interests, encode_interests, log
from telemetra.kit.events import EventBus

CHANNEL = "telemetra_events"
PEERS_CHANNEL = "telemetra_peers"
# PostgreSQL refuses a payload of 8,000 bytes or more; the header takes the rest.
PG_PART_BYTES = 7_900
PING_SECONDS = 5.0  # the listener checks its connection this often (a silent drop)
BACKOFF_SECONDS = (0.1, 5.0)  # first and longest wait between reconnection attempts
ACK_POLL_SECONDS = 0.1  # a waiting change looks again at which peers are alive this often
CONTROL_SECONDS = 5.0  # the longest a heartbeat, an ack or a goodbye may take


def connect_args(engine: AsyncEngine) -> dict:
    """asyncpg.connect's arguments for ``engine``'s database."""
    _, args = engine.dialect.create_connect_args(engine.url)
    for adapter_only in ("prepared_statement_cache_size", "async_fallback"):
        args.pop(adapter_only, None)
    return {"timeout": 10, **args}


class PostgresRelay(Relay):
    """NOTIFY in the unit of work; one LISTENing connection per process."""

    def __init__(self, engine: AsyncEngine, bus: EventBus) -> None:
        super().__init__(engine, bus)
        self._seq = itertools.count()
        self._conn = None
        self._lost: asyncio.Event | None = None
        self._lock = asyncio.Lock()  # one statement at a time on the listening connection
        self._parts: dict[tuple[str, str], list[str]] = {}
        # seq -> (peers yet to acknowledge, set at each ack, when staged)
        self._pending: dict[str, tuple[set[str], asyncio.Event, float]] = {}
        self._listeners: dict[str, object] = {}  # other channels on this connection
        self._sending: set[asyncio.Task] = set()

    async def listen(self, channel: str, callback) -> None:
        """Also LISTEN on ``channel`` (kept across reconnections); ``callback(payload)``."""
        self._listeners[channel] = callback
        if self._conn is not None:
            await self._conn.add_listener(channel, self._relay_to(callback))

    @staticmethod
    def _relay_to(callback):
        return lambda _conn, _pid, _channel, payload: callback(payload)

    async def _write(self, conn: AsyncConnection, messages: str, wait: bool) -> str:
        seq = f"{next(self._seq)}{'!' if wait else ''}"
        if wait:
            self._pending[seq] = ({peer.origin for peer in self.live_peers()},
                                  asyncio.Event(), time.monotonic())
        parts = [messages[i:i + PG_PART_BYTES]
                 for i in range(0, len(messages), PG_PART_BYTES)] or [""]
        for i, part in enumerate(parts):
            # "origin seq i n " then the part: seq keeps two units' identical payloads
            # apart (PostgreSQL folds equal notifications of one transaction into one).
            await conn.execute(text("SELECT pg_notify(:channel, :payload)"),
                               {"channel": CHANNEL,
                                "payload": f"{self.origin} {seq} {i} {len(parts)} {part}"})
        return seq

    async def _applied(self, token: str, deadline: float) -> set[str]:
        entry = self._pending.get(token)
        if entry is None:
            return set()
        waiting, acked, _ = entry
        try:
            while True:
                waiting.intersection_update(peer.origin for peer in self.live_peers())
                left = deadline - time.monotonic()
                if not waiting or left <= 0:
                    return set(waiting)
                acked.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(left, ACK_POLL_SECONDS)):
                        await acked.wait()
        finally:
            self._pending.pop(token, None)

    async def _open(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(**connect_args(self.engine))
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(CHANNEL, self._on_notify)
            await conn.add_listener(PEERS_CHANNEL, self._on_peer)
            for channel, callback in self._listeners.items():
                await conn.add_listener(channel, self._relay_to(callback))
        except BaseException:
            conn.terminate()
            raise
        self._conn, self._lost = conn, lost
        self._beat_now.set()  # announce this process at once

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        self._parts.clear()
        if conn is not None and not conn.is_closed():
            try:
                async with asyncio.timeout(2):
                    await conn.close()
            except Exception:
                conn.terminate()

    async def _control(self, payload: str) -> None:
        conn = self._conn
        if conn is None:
            return

        async def send() -> None:
            async with self._lock:
                await conn.execute("SELECT pg_notify($1, $2)", PEERS_CHANNEL, payload)

        # Bounded: a stalled connection must not hold heartbeats, acks or a shutdown.
        async with asyncio.timeout(CONTROL_SECONDS):
            await send()

    async def _beat(self) -> None:
        now = time.monotonic()
        for seq, (_, _, staged) in list(self._pending.items()):
            if now - staged > 60:  # staged, then its commit failed: nobody waits for it
                del self._pending[seq]
        await self._control(f"hb {self.origin} {encode_interests(self.bus)}")

    async def _leave(self) -> None:
        await self._control(f"bye {self.origin}")

    def _send_soon(self, payload: str) -> None:
        task = asyncio.get_running_loop().create_task(self._control(payload))
        self._sending.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task) -> None:
        self._sending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("could not acknowledge a change to its writer (%s)",
                        task.exception().__class__.__name__)

    def _on_peer(self, _conn, _pid: int, _channel: str, payload: str) -> None:
        what, _, rest = payload.partition(" ")
        origin, _, rest = rest.partition(" ")
        if origin == self.origin or not origin:
            return
        if what == "hb":
            if origin not in self.peers:
                self._beat_now.set()  # a newcomer: tell it of this process at once
            self.peers[origin] = Peer(origin, time.monotonic(), decode_interests(rest))
        elif what == "bye":
            self.peers.pop(origin, None)
        elif what == "ack":
            writer, _, seq = rest.partition(" ")
            entry = self._pending.get(seq) if writer == self.origin else None
            if entry is not None:
                entry[0].discard(origin)
                entry[1].set()

    def _on_notify(self, _conn, _pid: int, _channel: str, payload: str) -> None:
        try:
            origin, seq, index, count, part = payload.split(" ", 4)
            index, count = int(index), int(count)
        except ValueError:
            self._stale("a malformed notification")
            return
        if origin == self.origin:
            return
        if count == 1:
            self._deliver(origin, part)
        else:
            parts = self._parts.setdefault((origin, seq), [])
            if index != len(parts):
                del self._parts[(origin, seq)]
                self._stale("a notification's parts arrived out of order")
                return
            parts.append(part)
            if len(parts) < count:
                return
            del self._parts[(origin, seq)]
            self._deliver(origin, "".join(parts))
        if seq.endswith("!"):
            # Applied (the bus's subscribers ran in _deliver): the writer may answer.
            self._send_soon(f"ack {self.origin} {origin} {seq}")

    async def _run(self) -> None:
        delay = BACKOFF_SECONDS[0]
        while True:
            if self._conn is None:
                try:
                    await self._open()
                except Exception as exc:
                    log.warning("events listener cannot reconnect (%s); next try in %.1fs",
                                exc.__class__.__name__, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, BACKOFF_SECONDS[1])
                    continue
                delay = BACKOFF_SECONDS[0]
                # Listening again: what was sent meanwhile is lost, so caches start afresh.
                self._stale("the events listener reconnected")
            try:
                await self._watch()
            except Exception as exc:
                log.warning("events listener lost its connection (%s); reconnecting",
                            exc.__class__.__name__)
            await self._close()

    async def _watch(self) -> None:
        """Return when the listening connection is gone (closed, or unanswered pings)."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PING_SECONDS):
                    await self._lost.wait()
            if self._lost.is_set() or self._conn.is_closed():
                return
            async with self._lock:
                async with asyncio.timeout(PING_SECONDS):
                    await self._conn.fetchval("SELECT 1")
