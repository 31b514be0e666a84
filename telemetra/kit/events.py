"""Events after commit: what happened, published once the unit of work that did it commits.

A service records an event on the connection of its unit of work (``record(conn, event)``);
the unit's owner (``kit.db.write_transaction``, a request's ``TransactionalRoute``) publishes the
recorded events on the ``EventBus`` after the commit and drops them on a rollback. So a
reaction (a cache entry dropped, a broker login removed, a socket told) never sees a change
that did not happen, and no write path can forget one: the service records, subscribers react.

Subscribers are wired in the lifespan. A plain function is called at once, in the publisher's
task: it must be quick and never block (dropping a cache entry). A coroutine function gets a
bounded queue and a task of its own, so a slow subscriber never slows the publisher; when its
queue is full, events for it are dropped, logged and counted (``EventBus.dropped``).

Events are frozen dataclasses registered under a name with ``@event("device.changed")``, so
that a transport between processes can carry them as JSON (``to_message``/``from_message``).
"""

import asyncio
import dataclasses
import inspect
import logging
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger("telemetra.events")

E = TypeVar("E")
Handler = Callable[[Any], Awaitable[None] | None]

_KINDS: dict[str, type] = {}
# Events recorded on a connection whose unit of work has not ended yet. Weak keys: a unit
# that is never finished (a crash between begin and commit) leaks nothing.
_RECORDED: "weakref.WeakKeyDictionary[AsyncConnection, list]" = weakref.WeakKeyDictionary()


def event(name: str) -> Callable[[type[E]], type[E]]:
    """Register a frozen dataclass as the event called ``name``."""

    def register(cls: type[E]) -> type[E]:
        if name in _KINDS and _KINDS[name] is not cls:
            raise ValueError(f"event {name!r} is registered twice")
        cls.event_name = name  # type: ignore[attr-defined]
        _KINDS[name] = cls
        return cls

    return register


def record(conn: AsyncConnection, *events: Any) -> None:
    """Record ``events`` in the unit of work ``conn`` belongs to: published after it commits."""
    _RECORDED.setdefault(conn, []).extend(events)


def take_recorded(conn: AsyncConnection) -> list:
    """The events recorded on ``conn``, forgotten there (a unit of work's owner calls this at
    its end: to publish them after a commit, or to drop them after a rollback)."""
    return _RECORDED.pop(conn, [])


def to_message(item: Any) -> dict:
    """An event as JSON-ready data (for a transport between processes)."""
    return {"event": item.event_name, "data": dataclasses.asdict(item)}


def from_message(message: dict) -> Any:
    """The event ``to_message`` made; ``KeyError``/``TypeError`` for an unknown or bad one."""
    data = message["data"]
    cls = _KINDS[message["event"]]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    return cls(**{name: _tupled(value) for name, value in data.items() if name in fields})


def _tupled(value: Any) -> Any:
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value


class _QueuedSubscriber:
    def __init__(self, name: str, handler: Handler, size: int, here_only: bool) -> None:
        self.name = name
        self.here_only = here_only
        self.handler = handler
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=size)
        self.task: asyncio.Task | None = None

    async def run(self) -> None:
        while True:
            item = await self.queue.get()
            try:
                await self.handler(item)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event subscriber %s failed on %s", self.name,
                              type(item).__name__)
            finally:
                self.queue.task_done()


class EventBus:
    """The events of this process, handed to the subscribers of their type."""

    def __init__(self) -> None:
        self._inline: dict[type, list[tuple[str, Callable[[Any], None], bool]]] = {}
        self._queued: dict[type, list[_QueuedSubscriber]] = {}
        self._all_queued: list[_QueuedSubscriber] = []
        # Set by a transport between processes: writes a unit's events in that unit, just
        # before it commits, so other processes get them exactly when the change is visible.
        # It returns what the unit's owner awaits after the commit before answering (for
        # events that say ``answer_when_everywhere``: until every process applied them).
        self.stage: Callable[[AsyncConnection, list],
                             Awaitable[Callable[[], Awaitable[None]] | None]] | None = None
        # Set by a transport between processes: called when ``set_interest`` changes.
        self.interest_changed: Callable[[], None] | None = None
        self.published = 0
        self.dropped: Counter[str] = Counter()
        self._interest: dict[type, frozenset[int]] = {}
        self._active: dict[type, list[Callable[[], bool]]] = {}

    def subscribe(self, kind: type, handler: Handler, *, name: str | None = None,
                  queue_size: int = 10_000, here_only: bool = False,
                  active: Callable[[], bool] | None = None) -> None:
        """Call ``handler`` with every event of type ``kind`` (or a subclass) published here.
        ``here_only``: only for changes made by this process, not those relayed from others
        (an outside effect, such as a broker login, that one process is enough to make).
        ``active``: for ``wants``, whether the subscriber wants anything right now (a
        transport to other processes wants readings only while some process asked)."""
        name = name or getattr(handler, "__qualname__", repr(handler))
        if active is not None:
            self._active.setdefault(kind, []).append(active)
        if inspect.iscoroutinefunction(handler):
            subscriber = _QueuedSubscriber(name, handler, queue_size, here_only)
            self._queued.setdefault(kind, []).append(subscriber)
            self._all_queued.append(subscriber)
            if _running_loop() is not None:
                subscriber.task = asyncio.create_task(subscriber.run(), name=f"events-{name}")
        else:
            self._inline.setdefault(kind, []).append((name, handler, here_only))

    def unsubscribe(self, kind: type, handler: Handler) -> None:
        """Stop handing events of type ``kind`` to ``handler`` (a queued one's task ends and
        what it held is dropped); with nothing left for ``kind``, ``wants`` says so again."""
        inline = [entry for entry in self._inline.get(kind, ()) if entry[1] != handler]
        queued = [s for s in self._queued.get(kind, ()) if s.handler != handler]
        for subscriber in [s for s in self._queued.get(kind, ()) if s.handler == handler]:
            self._all_queued.remove(subscriber)
            if subscriber.task is not None:
                subscriber.task.cancel()
        for table, left in ((self._inline, inline), (self._queued, queued)):
            if left:
                table[kind] = left
            else:
                table.pop(kind, None)

    def wants(self, kind: type) -> bool:
        """Whether anything here subscribes to events of type ``kind``: a publisher may skip
        building one nobody hears."""
        for subscribed in {*self._inline, *self._queued}:
            if issubclass(kind, subscribed):
                total = len(self._inline.get(subscribed, ())) + len(
                    self._queued.get(subscribed, ()))
                conditional = self._active.get(subscribed, ())
                if total > len(conditional) or any(active() for active in conditional):
                    return True
        return False

    def set_interest(self, kind: type, organization_ids: Iterable[int]) -> None:
        """The organizations for which this process wants events of type ``kind`` that other
        processes publish outside a unit of work (the writer's ``ReadingsCommitted``): a
        transport between processes sends them here only for those (live sockets held here
        set it as their subscriptions change). Events recorded in a unit of work reach every
        process whatever this says."""
        organization_ids = frozenset(organization_ids)
        if self._interest.get(kind, frozenset()) == organization_ids:
            return
        self._interest[kind] = organization_ids
        if self.interest_changed is not None:
            self.interest_changed()  # tell the other processes now, not at the next heartbeat

    def interest(self, kind: type) -> frozenset[int]:
        """What ``set_interest`` last said for ``kind`` (nothing, at first)."""
        return self._interest.get(kind, frozenset())

    def interests(self) -> dict[type, frozenset[int]]:
        """Every kind's interest (for a transport announcing them)."""
        return dict(self._interest)

    async def start(self) -> None:
        for subscriber in self._all_queued:
            if subscriber.task is None:
                subscriber.task = asyncio.create_task(subscriber.run(),
                                                      name=f"events-{subscriber.name}")

    async def stop(self, timeout: float = 5.0) -> None:
        """Let queued subscribers finish what they hold (up to ``timeout``), then stop them."""
        pending = [s.queue.join() for s in self._all_queued if s.task is not None]
        if pending:
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.gather(*pending)
            except TimeoutError:
                log.warning("event subscribers still busy at shutdown; their events are lost")
        for subscriber in self._all_queued:
            if subscriber.task is not None:
                subscriber.task.cancel()
        await asyncio.gather(*(s.task for s in self._all_queued if s.task is not None),
                             return_exceptions=True)
        for subscriber in self._all_queued:
            subscriber.task = None

    def publish(self, events: Iterable[Any], *, remote: bool = False) -> None:
        """Hand committed ``events`` to their subscribers; never blocks, never raises.
        ``remote``: the events came from another process (``here_only`` subscribers skip
        them)."""
        events = list(events)
        if not events:
            return
        self.published += len(events)
        for item in events:
            for kind in type(item).__mro__:
                for name, handler, here_only in self._inline.get(kind, ()):
                    if here_only and remote:
                        continue
                    try:
                        handler(item)
                    except Exception:
                        log.exception("event subscriber %s failed on %s", name,
                                      type(item).__name__)
                for subscriber in self._queued.get(kind, ()):
                    if subscriber.here_only and remote:
                        continue
                    try:
                        subscriber.queue.put_nowait(item)
                    except asyncio.QueueFull:
                        self.dropped[subscriber.name] += 1
                        log.warning("event subscriber %s is behind; %s dropped",
                                    subscriber.name, type(item).__name__)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
