"""A per-process cache of verified device keys, so the ingest hot path needs no query to know
who is calling.

Keyed by the key's SHA-256 (the key itself is never kept). Sized for a fleet: an entry lives
until it is the least recently used of ``max_entries`` (or, as a backstop, ``max_age``
seconds), so a device that posts every few minutes stays known. It is kept true by
``forget(device_id)`` and ``clear()``, called after each committed change of a device's key,
status or existence (the events of that change, in every process).

A lookup that missed reads the database, then ``put``\\s what it found; if the device was
forgotten meanwhile, what it read may be the old state. ``generation()`` taken before the
read and handed to ``put`` refuses such an entry.
"""

import time

from cachetools import TTLCache

from telemetra.kit.secrets import token_hash

DEFAULT_MAX_ENTRIES = 100_000
DEFAULT_MAX_AGE_SECONDS = 3600.0


class _Entries(TTLCache):
    """A TTLCache that tells its owner which entries it dropped (least recently used, or
    expired), so the owner's index by device stays the same size as the cache."""

    def __init__(self, maxsize: int, ttl: float, timer, dropped) -> None:
        super().__init__(maxsize, ttl, timer)
        self._dropped = dropped

    def expire(self, time=None):
        expired = super().expire(time)
        for digest, device in expired:
            self._dropped(digest, device)
        return expired

    def popitem(self):
        digest, device = super().popitem()
        self._dropped(digest, device)
        return digest, device


class DeviceKeyCache:
    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES,
                 max_age: float = DEFAULT_MAX_AGE_SECONDS, timer=time.monotonic) -> None:
        self.max_entries = max_entries
        self._entries = _Entries(max_entries, max_age, timer, self._dropped)
        self._by_device: dict[int, str] = {}  # device id -> the digest cached for it
        self._generation = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str):
        """The device this key was verified for, or None."""
        return self._entries.get(token_hash(key))

    def generation(self) -> int:
        """Take before reading a device from the database; give it to ``put``."""
        return self._generation

    def put(self, key: str, device, generation: int | None = None) -> None:
        """Remember a verified key; not if a device was forgotten (or the cache cleared)
        since ``generation`` was taken, for what was read may be what was forgotten."""
        if generation is not None and generation != self._generation:
            return
        digest = token_hash(key)
        previous = self._by_device.get(device.id)
        if previous is not None and previous != digest:
            self._entries.pop(previous, None)  # a device has one key: the new one wins
        self._entries[digest] = device
        self._by_device[device.id] = digest

    def forget(self, device_id: int) -> None:
        """Drop the device's entry: its key, status or existence changed."""
        self._generation += 1
        digest = self._by_device.pop(device_id, None)
        if digest is not None:
            self._entries.pop(digest, None)

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()
        self._by_device.clear()

    def _dropped(self, digest: str, device) -> None:
        if self._by_device.get(device.id) == digest:
            del self._by_device[device.id]
