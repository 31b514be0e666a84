"""The ingestion path's caches: bounded whatever the fleet, long-lived, and never keeping a
row read before a change that was forgotten meanwhile."""

from fastapi.testclient import TestClient

from telemetra.app import create_app
from telemetra.ingest.caches import ForgetfulCache
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, make_settings
from tests.helpers import Api, device_key

T = 1767268800


def test_a_cache_holds_at_most_its_size_dropping_the_least_recently_used():
    cache = ForgetfulCache(3)
    for key in "abc":
        cache.put(key, key.upper(), cache.generation)
    assert cache.get("a") == "A"  # now the most recent
    cache.put("d", "D", cache.generation)
    assert (cache.size, cache.get("b"), cache.get("a"), cache.get("d")) == (3, None, "A", "D")


def test_a_lookup_that_began_before_a_forget_is_not_kept():
    cache = ForgetfulCache(10)
    cache.put("device", "old row", cache.generation)
    began = cache.generation  # a lookup reads the row...
    cache.forget("device")  # ...the change commits and is forgotten...
    cache.put("device", "old row", began)  # ...then the lookup puts what it read
    assert cache.get("device") is None
    cache.put("device", "new row", cache.generation)
    assert cache.get("device") == "new row"


def test_sized_by_entries_and_never_larger_than_the_whole():
    cache = ForgetfulCache(5, getsizeof=len)
    cache.put(1, {"a": 1, "b": 2, "c": 3}, 0)
    cache.put(2, {"a": 1, "b": 2}, 0)
    assert cache.size == 5
    cache.put(3, {"a": 1}, 0)  # the least recent device goes
    assert (cache.get(1), cache.size) == (None, 3)
    cache.put(4, dict.fromkeys(range(6)), 0)  # larger than the cache: not kept
    assert cache.get(4) is None


def test_the_sensor_cache_stays_at_its_size_however_many_sensors_are_seen(database_url):
    size = 40
    settings = make_settings(database_url, sensor_cache_size=size)
    with TestClient(create_app(settings)) as client:
        api = Api(client)
        root = api.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        ingestor = client.app.state.ingestor
        devices = [api.device(root) for _ in range(6)]
        for index, device in enumerate(devices):  # 6 devices x 25 sensors = 150 > 40
            body = {"ts": T + index, "values": {f"k{n}": n for n in range(25)}}
            response = api.post("/readings", device_key(device["api_key"]), json=body)
            assert response.json()["accepted"] == 25
            assert ingestor.cached_sensors <= size
        assert ingestor.cached_sensors == 25  # the last device's sensors, the most recent
        # An evicted device's sensors are read again, not created twice.
        again = api.post("/readings", device_key(devices[0]["api_key"]),
                         json={"ts": T + 100, "values": {f"k{n}": n for n in range(25)}})
        assert again.json()["accepted"] == 25
        listed = api.get("/sensors", root, params={"device_id": devices[0]["id"],
                                                   "limit": 100}).json()
        assert listed["total"] == 25


def test_a_changed_valid_range_is_seen_by_the_next_reading(database_url):
    with TestClient(create_app(make_settings(database_url))) as client:
        api = Api(client)
        root = api.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        device = api.device(root)
        key = device_key(device["api_key"])
        sensor = api.post("/sensors", root, json={"device_id": device["id"],
                                                  "key": "t"}).json()
        api.post("/readings", key, json={"sensor_id": sensor["id"], "value": 10, "ts": T})
        api.patch(f"/sensors/{sensor['id']}", root, json={"valid_max": 5})
        api.post("/readings", key, json={"sensor_id": sensor["id"], "value": 10,
                                         "ts": T + 1})
        items = api.get("/readings", root, params={"sensor_id": sensor["id"], "order": "asc",
                                                   "include_invalid": True}).json()["items"]
        assert [r["valid"] for r in items] == [True, False]
