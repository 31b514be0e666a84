"""The per-process cache of verified device keys: long-lived, bounded, and never handing
back an entry that a committed change made stale."""

from telemetra.auth.dependencies import AuthDevice
from telemetra.auth.devicekeys import DeviceKeyCache


def device(device_id: int, status: str = "active") -> AuthDevice:
    return AuthDevice(id=device_id, organization_id=1, status=status)


def test_a_key_is_remembered_until_its_device_is_forgotten():
    cache = DeviceKeyCache()
    cache.put("tdk_a", device(1))
    cache.put("tdk_b", device(2))
    assert cache.get("tdk_a") == device(1)
    assert cache.get("tdk_unknown") is None
    cache.forget(1)
    assert cache.get("tdk_a") is None
    assert cache.get("tdk_b") == device(2)  # only that device
    cache.clear()
    assert cache.get("tdk_b") is None and len(cache) == 0


def test_bounded_by_its_size_least_recently_used_first_and_the_index_with_it():
    cache = DeviceKeyCache(max_entries=3)
    for n in range(3):
        cache.put(f"tdk_{n}", device(n))
    assert cache.get("tdk_0") is not None  # 0 used again: 1 is now the least recent
    cache.put("tdk_3", device(3))
    assert len(cache) == 3
    assert cache.get("tdk_1") is None
    assert all(cache.get(f"tdk_{n}") is not None for n in (0, 2, 3))
    for n in range(4, 1000):
        cache.put(f"tdk_{n}", device(n))
    assert len(cache) == 3 and len(cache._by_device) == 3  # nothing kept for the evicted


def test_a_rotated_key_replaces_the_old_one():
    cache = DeviceKeyCache()
    cache.put("tdk_old", device(1))
    cache.put("tdk_new", device(1))
    assert cache.get("tdk_old") is None and cache.get("tdk_new") == device(1)


def test_a_lookup_that_began_before_a_forget_cannot_put_the_old_entry_back():
    cache = DeviceKeyCache()
    generation = cache.generation()  # a lookup reads the device (still active)...
    cache.forget(1)  # ...meanwhile it is deactivated and the change committed
    cache.put("tdk_a", device(1), generation)  # the lookup ends with what it read
    assert cache.get("tdk_a") is None
    generation = cache.generation()
    cache.clear()
    cache.put("tdk_a", device(1), generation)
    assert cache.get("tdk_a") is None
    cache.put("tdk_a", device(1, "inactive"), cache.generation())  # a lookup after it
    assert cache.get("tdk_a") == device(1, "inactive")


def test_an_entry_is_checked_again_after_its_longest_age():
    now = [0.0]
    cache = DeviceKeyCache(max_age=3600, timer=lambda: now[0])
    cache.put("tdk_a", device(1))
    now[0] = 3599
    assert cache.get("tdk_a") is not None  # a device posting once an hour stays known
    now[0] = 3601
    assert cache.get("tdk_a") is None
    cache.put("tdk_b", device(2))  # expiry drops the index entry too
    assert list(cache._by_device) == [2]
