"""What both transports of the relay share: the message format, the peers, the waiting.

**Peers.** Every process announces itself (a heartbeat every ``HEARTBEAT_SECONDS``, carrying
what it wants of the events published outside units of work: ``EventBus.interest``) and
forgets a peer unheard for ``PEER_EXPIRY_SECONDS``: a process killed with -9 stops counting
within that time. PostgreSQL carries heartbeats as notifications on ``PEERS_CHANNEL``; SQLite
as a row per process in ``relay_peers`` (with how far it has read ``relayed_events``).

**Answering when everywhere.** A unit of work holding an event whose class says
``answer_when_everywhere = True`` (a rotated key, a deactivated device, a valid range...) is
answered only once every live peer has applied it: ``stage`` returns a wait, which the unit's
owner (``kit.db``) awaits after the commit. It is bounded by ``ANSWER_WAIT_SECONDS``: past it a
warning names the peers that did not answer, and the change is answered anyway (those peers
get it a moment later, or forget everything if they missed it).
"""

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from telemetra.kit.events import EventBus, event, from_message, to_message

log = logging.getLogger("telemetra.relay")

MAX_UNIT_BYTES = 1 << 20  # a unit whose events are larger is relayed as CachesStale
HEARTBEAT_SECONDS = 1.0
PEER_EXPIRY_SECONDS = 3.5  # a peer unheard this long is gone (killed, or hung)
ANSWER_WAIT_SECONDS = 1.0  # the longest a change waits for every peer to apply it
# A peer's interests hold longer: sending readings to a process that died costs little, while
# a live one whose heartbeat is late under load (a busy SQLite writer) must not lose them.
INTEREST_EXPIRY_SECONDS = 30.0

Wait = Callable[[], Awaitable[None]]


@event("caches.stale")
@dataclass(frozen=True, slots=True)
class CachesStale:
    """Events from other processes may have been missed: every cache forgets everything."""

    reason: str = ""


@dataclass
class Peer:
    """Another process sharing the database, as last heard of."""

    origin: str
    heard: float  # time.monotonic() (PostgreSQL) or time.time() (SQLite) of its last sign
    interests: dict[str, frozenset[int]] = field(default_factory=dict)
    position: int = 0  # SQLite: the last relayed_events id it has applied


def relayable(events: list) -> list:
    """The events that may leave this process (not ``local_only``)."""
    return [item for item in events if not getattr(type(item), "local_only", False)]


def answer_when_everywhere(events: list) -> bool:
    """Whether a unit holding ``events`` is answered only once every process applied it."""
    return any(getattr(type(item), "answer_when_everywhere", False) for item in events)


def encode(events: list) -> str:
    """Events as one ASCII JSON text (ASCII: parts can be cut at any byte)."""
    return json.dumps([to_message(item) for item in events], ensure_ascii=True,
                      separators=(",", ":"))


def decode(messages: str) -> list:
    """The events ``encode`` wrote; raises ``ValueError``/``KeyError``/``TypeError``."""
    return [from_message(message) for message in json.loads(messages)]


def encode_interests(bus: EventBus) -> str:
    """This process's interests as JSON: ``{event name: [organization ids]}``."""
    return json.dumps({kind.event_name: sorted(ids) for kind, ids in bus.interests().items()
                       if ids and hasattr(kind, "event_name")}, separators=(",", ":"))


def decode_interests(text: str | None) -> dict[str, frozenset[int]]:
    """What ``encode_interests`` wrote (nothing for a bad or empty text)."""
    try:
        data = json.loads(text or "{}")
        return {str(name): frozenset(int(i) for i in ids) for name, ids in data.items()}
    except (ValueError, TypeError, AttributeError):
        return {}


class Relay:
    """An origin id, the peers heard of, handing received events to the bus."""

    clock = staticmethod(time.monotonic)

    def __init__(self, engine: AsyncEngine, bus: EventBus) -> None:
        self.engine = engine
        self.bus = bus
        self.origin = uuid.uuid4().hex  # this process: its own messages come back, skipped
        self.received = 0  # events handed to this process's subscribers from others
        self.stale = 0  # CachesStale published
        self.late = 0  # changes answered before every peer said it applied them
        self.peers: dict[str, Peer] = {}
        self._tasks: list[asyncio.Task] = []
        self._beat_now = asyncio.Event()

    async def start(self) -> None:
        """Begin receiving (before this process caches anything) and install ``bus.stage``."""
        await self._open()
        self.bus.stage = self.stage
        self.bus.interest_changed = self._beat_now.set
        self._tasks = [asyncio.create_task(self._run(), name="events-relay"),
                       asyncio.create_task(self._heartbeats(), name="events-relay-heartbeat")]

    async def stop(self) -> None:
        if self.bus.stage == self.stage:
            self.bus.stage = None
            self.bus.interest_changed = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        try:
            async with asyncio.timeout(2):
                await self._leave()
        except Exception as exc:  # others forget this process at expiry anyway
            log.warning("could not tell other processes this one stops (%s)",
                        exc.__class__.__name__)
        await self._close()

    async def stage(self, conn: AsyncConnection, events: list) -> Wait | None:
        """Write ``events`` in ``conn``'s transaction (the bus calls this before the commit);
        for a unit to answer only when applied everywhere, the wait to await after commit."""
        events = relayable(events)
        if not events:
            return None
        wait = answer_when_everywhere(events)
        messages = encode(events)
        if len(messages) > MAX_UNIT_BYTES:
            log.warning("%d events of %d bytes are too large to relay; other processes are "
                        "told to forget their caches", len(events), len(messages))
            messages = encode([CachesStale("a unit of work's events were too large")])
        token = await self._write(conn, messages, wait)
        return (lambda: self.everywhere(token)) if wait else None

    async def everywhere(self, token) -> None:
        """Return once every live peer applied the unit ``token``, or past the bound."""
        started = time.monotonic()
        try:
            missing = await self._applied(token, started + ANSWER_WAIT_SECONDS)
        except Exception as exc:
            log.warning("could not learn whether other processes applied a change (%s)",
                        exc.__class__.__name__)
            return
        if missing:
            self.late += 1
            log.warning("a change is answered before %d other process(es) said they applied "
                        "it (waited %.2fs): %s", len(missing), time.monotonic() - started,
                        ", ".join(sorted(missing)))

    def live_peers(self, expiry: float | None = None) -> list[Peer]:
        """The peers heard of within ``expiry`` (``PEER_EXPIRY_SECONDS``)."""
        since = self.clock() - (PEER_EXPIRY_SECONDS if expiry is None else expiry)
        return [peer for peer in self.peers.values() if peer.heard >= since]

    def interested(self, name: str) -> dict[str, frozenset[int]]:
        """The peers wanting events called ``name`` (outside units of work), and for which
        organizations (heard of within ``INTEREST_EXPIRY_SECONDS``)."""
        return {peer.origin: peer.interests[name]
                for peer in self.live_peers(INTEREST_EXPIRY_SECONDS)
                if peer.interests.get(name)}

    async def prune(self) -> None:
        """Maintenance: drop what every process has long read (nothing to do on PostgreSQL)."""

    def _deliver(self, origin: str, messages: str) -> list | None:
        """Publish another process's events here: them, or None if caches were cleared."""
        if origin == self.origin:
            return []  # published here already, right after the commit
        try:
            events = decode(messages)
        except (ValueError, KeyError, TypeError) as exc:
            # A newer process's event type, say: what changed is unknown, so forget it all.
            self._stale(f"undecodable events from another process ({exc!r})")
            return None
        self.received += len(events)
        self.bus.publish(events, remote=True)
        return events

    def _stale(self, reason: str) -> None:
        log.warning("events from other processes may have been missed (%s); caches are "
                    "cleared", reason)
        self.stale += 1
        self.bus.publish([CachesStale(reason)], remote=True)

    async def _heartbeats(self) -> None:
        failing = False
        while True:
            try:
                await self._beat()
                if failing:
                    log.warning("relay heartbeats work again")
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:
                    log.warning("relay heartbeat failed (%s); trying again",
                                exc.__class__.__name__)
                failing = True
            self._beat_now.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HEARTBEAT_SECONDS):
                    await self._beat_now.wait()

    async def _open(self) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError

    async def _write(self, conn: AsyncConnection, messages: str, wait: bool):
        raise NotImplementedError

    async def _applied(self, token, deadline: float) -> set[str]:
        """Wait until every live peer applied ``token`` or ``deadline`` (monotonic) passes;
        the peers still missing."""
        raise NotImplementedError

    async def _beat(self) -> None:
        raise NotImplementedError

    async def _leave(self) -> None:
        raise NotImplementedError

    async def _run(self) -> None:
        raise NotImplementedError
