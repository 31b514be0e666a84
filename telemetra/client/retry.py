"""Exponential back-off with full jitter, shared by the device and user clients."""

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from telemetra.client.errors import ApiError, Closed, Unreachable

log = logging.getLogger("telemetra.client")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    """How often and how patiently to try again.

    The n-th wait (from 0) is a random time in ``[0, min(cap, base * 2**n)]`` ("full jitter",
    so a fleet that lost the platform at the same moment does not come back in step), and at
    least the ``Retry-After`` the platform asked for. A ``Retry-After`` longer than ``cap``
    (a daily quota spent until midnight) is not waited for: the error is raised.

    >>> Backoff(attempts=1)            # never retry
    >>> Backoff(attempts=None, cap=60)  # keep trying, at most a minute apart
    """

    attempts: int | None = 6
    base: float = 0.5
    cap: float = 30.0

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        wait = random.uniform(0, min(self.cap, self.base * 2 ** min(retry, 32)))
        return max(wait, retry_after or 0.0)

    def run(self, call: Callable[[], T], stop: threading.Event | None = None,
            what: str = "request") -> T:
        """``call()`` until it succeeds, raises something not worth retrying, or the attempts
        are spent (then its last error is raised). ``stop`` being set ends the waiting with
        ``Closed``."""
        stop = stop or threading.Event()
        retry = 0
        while True:
            try:
                return call()
            except (ApiError, Unreachable) as exc:
                retry_after = getattr(exc, "retry_after", None)
                if not exc.retryable or (retry_after or 0) > self.cap:
                    raise
                if self.attempts is not None and retry + 1 >= self.attempts:
                    raise
                wait = self.delay(retry, retry_after)
                log.info("%s failed (%s); trying again in %.2fs", what, exc, wait)
                if stop.wait(wait):
                    raise Closed("closed while waiting to retry") from exc
                retry += 1
