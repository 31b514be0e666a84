"""Rate limits (API.md, "Rate limits") with the ``limits`` library: fixed windows counted in
this process's memory, or in Redis (``TELEMETRA_REDIS_URL``) so that several processes share
them.

In memory a hit is a few dict operations, no I/O (``Windows``: the ``limits`` library's own
memory storage expires its keys from a timer thread started again every 10 ms, which cost the
device fast path about 8% of its rate in GIL hand-overs); with Redis it is one round trip (the
library's Redis storage). Should
Redis fail, the request passes (logged): a rate limit protects the service, and refusing
everything while Redis is away would be the outage it is there to prevent.
"""

import ipaddress
import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter as AsyncFixedWindow

from telemetra.kit.errors import RateLimited

log = logging.getLogger("telemetra.ratelimit")

OFF = "off"
REDIS_KEY_PREFIX = "telemetra-ratelimit"


@dataclass(frozen=True, slots=True)
class Rule:
    """One limit and what it counts by (``scope``: "device key", "user", ...)."""

    item: RateLimitItem
    scope: str

    @classmethod
    def of(cls, text: str, scope: str) -> "Rule | None":
        """The rule a setting describes ("1000/second"), or None for ``off``."""
        return None if text.strip().lower() == OFF else cls(parse(text), scope)

    def __str__(self) -> str:
        """As a person says it: "device key: 1000 per second", "user: 10 per 2 minutes"."""
        unit = self.item.GRANULARITY.name
        per = unit if self.item.multiples == 1 else f"{self.item.multiples} {unit}s"
        return f"{self.scope}: {self.item.amount} per {per}"


class Windows:
    """Fixed windows counted in this process's memory: per (scope, identity) the current
    window's number and its hits. Windows start at multiples of the rule's period (a minute
    rule resets on the minute); entries of past windows are swept once a second."""

    def __init__(self, clock=time.time) -> None:
        self._clock = clock
        self._counts: dict[tuple[str, str], list] = {}  # -> [window end, hits]
        self._sweep_at = 0.0

    def hit(self, item: RateLimitItem, scope: str, identity: str) -> tuple[int, float] | None:
        """Count one hit: None if within the limit, else (remaining, the window's end)."""
        now = self._clock()
        if now >= self._sweep_at:
            self._sweep(now)
        key = (scope, identity)
        entry = self._counts.get(key)
        if entry is None or now >= entry[0]:
            period = item.get_expiry()
            entry = self._counts[key] = [(now // period + 1) * period, 0]
        if entry[1] >= item.amount:
            return 0, entry[0]
        entry[1] += 1
        return None

    def _sweep(self, now: float) -> None:
        self._sweep_at = now + 1.0
        expired = [key for key, (end, _) in self._counts.items() if now >= end]
        for key in expired:
            del self._counts[key]


class RateLimiter:
    """Counts hits of rules by identity, in memory or in Redis."""

    def __init__(self, redis_url: str = "") -> None:
        self.shared = bool(redis_url)
        if redis_url:
            self._storage = RedisStorage(f"async+{redis_url}", implementation="redispy",
                                         key_prefix=REDIS_KEY_PREFIX)
            self._async = AsyncFixedWindow(self._storage)
            self._sync = None
        else:
            self._storage = None
            self._sync = Windows()
            self._async = None

    async def hit(self, rule: Rule | None, identity: str) -> None:
        """Count one hit; ``RateLimited`` (429, naming the rule, with ``Retry-After`` and
        ``RateLimit-*`` headers) once the rule's window is used up."""
        if rule is None:
            return
        if self._sync is not None:
            refused = self._sync.hit(rule.item, rule.scope, identity)
            if refused is None:
                return
            remaining, reset_time = refused
        else:
            try:
                if await self._async.hit(rule.item, rule.scope, identity):
                    return
                stats = await self._async.get_window_stats(rule.item, rule.scope, identity)
            except Exception as exc:  # Redis is away: let the request through (see above)
                log.warning("rate limit not checked, Redis failed: %s", type(exc).__name__)
                return
            remaining, reset_time = stats.remaining, stats.reset_time
        reset = max(1, math.ceil(reset_time - time.time()))
        raise RateLimited(f"rate limit exceeded, {rule}; retry in {reset} s",
                          headers={"Retry-After": str(reset),
                                   "RateLimit-Limit": str(rule.item.amount),
                                   "RateLimit-Remaining": str(remaining),
                                   "RateLimit-Reset": str(reset)},
                          limit=str(rule), scope=rule.scope)

    async def close(self) -> None:
        if self._async is not None:
            client = getattr(getattr(self._storage, "bridge", None), "storage", None)
            if client is not None and hasattr(client, "aclose"):
                try:
                    await client.aclose()
                except Exception:  # closing a broken connection: dropped anyway
                    log.debug("closing the rate limits' Redis client failed", exc_info=True)


def _networks(values: list[str]) -> tuple:
    return tuple(ipaddress.ip_network(value, strict=False) for value in values)


def _within(address: str, networks: tuple) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


class RateLimits:
    """The platform's rules (``TELEMETRA_RATE_LIMIT_*``) on one limiter."""

    def __init__(self, limiter: RateLimiter, *, ingest: str = "1000/second",
                 api: str = "1200/minute", login: str = "10/minute",
                 trusted_proxies: list[str] | None = None) -> None:
        self.limiter = limiter
        self.ingest = Rule.of(ingest, "device key")
        self.api = Rule.of(api, "user")
        self.login_address = Rule.of(login, "client address")
        self.login_username = Rule.of(login, "username")
        self.trusted_proxies = _networks(trusted_proxies or [])

    @classmethod
    def from_settings(cls, settings) -> "RateLimits":
        return cls(RateLimiter(settings.redis_url), ingest=settings.rate_limit_ingest,
                   api=settings.rate_limit_api, login=settings.rate_limit_login,
                   trusted_proxies=settings.trusted_proxies)

    async def device(self, device_id: int) -> None:
        """An ingestion request with a device's key."""
        await self.limiter.hit(self.ingest, str(device_id))

    async def user(self, user_id: int) -> None:
        """A request with a user's access token."""
        await self.limiter.hit(self.api, str(user_id))

    async def login(self, address: str, username: str) -> None:
        """A login or sign-up attempt: counted by client address and by username."""
        await self.limiter.hit(self.login_address, address)
        await self.limiter.hit(self.login_username, username.strip().lower())

    def client_address(self, peer: str | None, forwarded_for: list[str]) -> str:
        """The client's address: the peer's, or, when the peer is a trusted proxy, the
        rightmost address of ``X-Forwarded-For`` that is not a trusted proxy (the left part
        of the header is whatever the client wrote)."""
        if peer and self.trusted_proxies and _within(peer, self.trusted_proxies):
            hops = [hop.strip() for value in forwarded_for for hop in value.split(",")
                    if hop.strip()]
            for hop in reversed(hops):
                if not _within(hop, self.trusted_proxies):
                    return hop
            if hops:
                return hops[0]
        return peer or "unknown"

    async def close(self) -> None:
        await self.limiter.close()
