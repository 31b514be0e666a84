"""One socket's side of the fan-out: its user, subscriptions and bounded queue of messages.

The hub only ever ``push``es (never awaits a socket), so a client that reads slowly, or not
at all, slows nobody: its queue fills, the oldest messages are dropped for it alone, and the
next message it gets is ``{"type": "lagged", "dropped": N}``. The sender task drains the queue
onto the socket at whatever pace the client reads.

When the server's protocol can write a frame at once (``send_now``: ``live.deflate``'s
``LiveWriter.now``) and nothing is queued or being sent, ``push`` writes the message
in the pusher's step: no task is woken for it. A socket that would make the writer wait
refuses, and the message is queued, so order holds and a slow client still slows nobody.
"""

import asyncio
import itertools
from collections import deque
from dataclasses import dataclass, field

import orjson

from telemetra.auth.principals import AuthUser
from telemetra.auth.roles import Role
from telemetra.kit.timeutil import utcnow

_ids = itertools.count(1)


def now_iso() -> str:
    return utcnow().isoformat().replace("+00:00", "Z")


def message(kind: str, **fields) -> str:
    """A server message as JSON text: ``type``, ``ts`` (now), then ``fields``."""
    return orjson.dumps({"type": kind, "ts": now_iso(), **fields},
                        option=orjson.OPT_UTC_Z).decode()


class SharedText(str):
    """A message sent to many sockets: its UTF-8 bytes made once, not once per socket.

    The server's WebSocket protocol encodes each text frame with ``text.encode()``; with 200
    sockets on one device that was 200 copies of every message (the readings fan-out's sends
    cost more than the readings' ingestion). Being a ``str``, it is a text frame like any
    other to every layer in between.
    """

    __slots__ = ("_encoded",)

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        if encoding.replace("-", "").lower() != "utf8" or errors != "strict":
            return str.encode(self, encoding, errors)
        try:
            return self._encoded
        except AttributeError:
            self._encoded = str.encode(self)
            return self._encoded


@dataclass(eq=False, slots=True)
class Subscription:
    """What one subscription wants; compared by identity (two may look alike)."""

    id: str
    topic: str
    connection: "Connection"
    device_id: int | None = None
    site_id: int | None = None
    group_id: int | None = None
    keys: frozenset[str] | None = None
    quoted_id: str = field(init=False)  # the id as JSON, spliced into shared message bodies

    def __post_init__(self) -> None:
        self.quoted_id = orjson.dumps(self.id).decode()

    @property
    def needs_device(self) -> bool:
        """Whether matching needs the device's site and groups."""
        return self.site_id is not None or self.group_id is not None

    def covers(self, device_id: int, info) -> bool:
        """Whether an event of ``device_id`` (whose site and groups are ``info``) is wanted."""
        if self.device_id is not None:
            return device_id == self.device_id
        if self.site_id is not None:
            return info is not None and info.site_id == self.site_id
        if self.group_id is not None:
            return info is not None and self.group_id in info.group_ids
        return True


class Connection:
    """An authenticated socket: ``push`` queues a message, ``send_all`` delivers them."""

    def __init__(self, send_text, user: AuthUser, token: str, expires_at: float,
                 queue_size: int, send_now=None) -> None:
        self.id = next(_ids)
        self.send_text = send_text
        self.send_now = send_now  # text -> bool: written at once, or False (see the module)
        self._sending = False  # the sender task holds messages taken from the queue
        self.user = user
        self.token = token
        self.expires_at = expires_at  # the access token's expiry, epoch seconds
        self.subscriptions: dict[str, Subscription] = {}
        self.queue_size = queue_size
        self.dropped = 0  # since the last ``lagged``
        self.dropped_total = 0
        self._queue: deque[str] = deque()
        self._ready = asyncio.Event()
        self._next_id = itertools.count(1)
        self.expiry: asyncio.TimerHandle | None = None  # closes the socket at expires_at
        self.closing: tuple[int, str] | None = None
        self.closed = asyncio.Event()  # set when the hub wants the socket closed

    @property
    def sees_invalid(self) -> bool:
        return self.user.role.at_least(Role.admin)

    def new_subscription_id(self) -> str:
        while (candidate := f"s{next(self._next_id)}") in self.subscriptions:
            pass
        return candidate

    def push(self, text: str) -> None:
        """Write ``text`` at once if the socket takes it and nothing is ahead of it; else
        queue it, past the bound dropping the oldest queued message."""
        if (self.send_now is not None and not self._queue and not self._sending
                and self.closing is None and self._sent_now(text)):
            return
        if len(self._queue) >= self.queue_size:
            self._queue.popleft()
            self.dropped += 1
            self.dropped_total += 1
        self._queue.append(text)
        self._ready.set()

    def _sent_now(self, text: str) -> bool:
        try:
            return self.send_now(text)
        except Exception:  # a socket gone under it: the sender task's send will say so
            return False

    def close(self, code: int, reason: str) -> None:
        """Ask for the socket to be closed with ``code`` (the endpoint does it)."""
        if self.closing is None:
            self.closing = (code, reason)
            self.closed.set()

    async def send_all(self) -> None:
        """Deliver queued messages for ever, each ``lagged`` before what follows a drop."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            self._sending = True
            try:
                while self._queue:
                    if self.dropped:
                        dropped, self.dropped = self.dropped, 0
                        await self.send_text(message("lagged", dropped=dropped))
                    await self.send_text(self._queue.popleft())
            finally:
                self._sending = False
