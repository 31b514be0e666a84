"""What the ingestion path remembers between bodies: bounded, long-lived, kept true by forgetting.

A fleet device that sends every few minutes must find its device and sensors cached, so entries
do not expire; each cache is an LRU (``cachetools``) of a size set in settings, so memory stays
flat however many sensors have ever been seen. A change (an event: device changed, sensor
changed, organization changed) makes the ingestor ``forget`` what it cached about it.

One race is closed here: a lookup that read the old row before a change committed must not put
it back after the change was forgotten. Each cache has a generation that every ``forget``
bumps; a lookup notes it before reading (``generation``), and a ``put`` made with an older
generation is not kept (the next lookup reads again).
"""

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache


@dataclass(frozen=True, slots=True)
class CacheSizes:
    """Settings ``TELEMETRA_SENSOR_CACHE_SIZE`` (sensors), ``TELEMETRA_DEVICE_CACHE_SIZE``
    (devices), ``TELEMETRA_ORGANIZATION_CACHE_SIZE`` (organizations)."""

    sensors: int = 100_000
    devices: int = 20_000
    organizations: int = 2_000


class ForgetfulCache:
    """An LRU cache of at most ``maxsize`` (as measured by ``getsizeof``; entries count one
    each by default) whose ``put`` is refused when a ``forget`` happened since the lookup
    began."""

    def __init__(self, maxsize: int, getsizeof: Callable[[Any], int] | None = None) -> None:
        self._data: LRUCache = LRUCache(maxsize, getsizeof=getsizeof)
        self.generation = 0

    def get(self, key: Hashable) -> Any:
        """The cached value (now the most recently used), or None."""
        return self._data.get(key)

    def put(self, key: Hashable, value: Any, generation: int) -> None:
        """Keep ``value``, read by a lookup that began at ``generation``, unless something
        was forgotten since."""
        if generation != self.generation:
            return
        try:
            self._data[key] = value
        except ValueError:  # larger than the whole cache: not kept
            pass

    def forget(self, key: Hashable) -> None:
        """Drop ``key``; lookups under way will not put what they read."""
        self.generation += 1
        self._data.pop(key, None)

    def clear(self) -> None:
        """Drop everything; lookups under way will not put what they read."""
        self.generation += 1
        self._data.clear()

    @property
    def size(self) -> int:
        """How much the cache holds, in the unit of ``maxsize``."""
        return self._data.currsize

    @property
    def maxsize(self) -> int:
        return self._data.maxsize
