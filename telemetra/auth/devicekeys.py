"""A per-process cache of verified device keys, so the ingest hot path needs no query to know
who is calling.

Keyed by the key's SHA-256 (the key itself is never kept). An entry lives ``ttl`` seconds and
is dropped, in this process, whenever its device's key, status or existence changes (after
the change is committed). Other processes see such a change within ``ttl``.
"""

import time

from telemetra.kit.secrets import token_hash


class DeviceKeyCache:
    def __init__(self, ttl: float = 10.0, max_entries: int = 100_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[object, float]] = {}

    def get(self, key: str):
        entry = self._entries.get(token_hash(key))
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def put(self, key: str, device) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # bounded memory; entries come back on the next request
        self._entries[token_hash(key)] = (device, time.monotonic() + self.ttl)

    def forget(self, device_id: int) -> None:
        for digest in [d for d, (device, _) in self._entries.items() if device.id == device_id]:
            del self._entries[digest]

    def clear(self) -> None:
        self._entries.clear()
