"""Two real ``telemetra serve`` processes on one database: a change committed through one is
seen by the other at once, although the other cached the old state a moment before.

Each case primes process B's cache with a request, makes the change through process A, then
asks B until it answers with the new state: at most ~1 s (the caches live far longer, so
without the relay B would go on answering from its cache), and the delay is printed. On
SQLite B hears of it by polling (every 50 ms), on PostgreSQL by NOTIFY.
"""

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.server import API, Server

T0 = 1767268800.0
AT_ONCE = 1.0  # seconds B may take: the relay's latency is tens of milliseconds


@pytest.fixture(scope="module")
def servers(databases, tmp_path_factory) -> Iterator[tuple[Server, Server]]:
    database_url = databases.new()
    logs = tmp_path_factory.mktemp("relay")
    a, b = Server(database_url, logs / "a.log"), Server(database_url, logs / "b.log")
    a.start()
    try:
        b.start()
        try:
            yield a, b
        finally:
            b.stop()
    finally:
        a.stop()


@pytest.fixture(scope="module")
def admin(servers) -> dict:
    return servers[0].login()


_times = iter(range(1, 1_000_000))


def _post(server: Server, key: str, body: dict | None = None) -> httpx.Response:
    body = body or {"ts": T0 + next(_times), "values": {"temperature": 21.5}}
    return httpx.post(server.base + API + "/readings", headers={"X-API-Key": key}, json=body,
                      timeout=10)


def _device(server: Server, admin: dict, name: str) -> dict:
    response = httpx.post(server.base + API + "/devices", headers=admin, json={"name": name},
                          timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def _until(check, what: str) -> float:
    """Seconds until ``check()`` holds; fails past AT_ONCE."""
    started = time.monotonic()
    while not check():
        elapsed = time.monotonic() - started
        assert elapsed < AT_ONCE, f"{what}: still not seen after {elapsed:.2f}s"
        time.sleep(0.005)
    elapsed = time.monotonic() - started
    print(f"{what}: seen by the other process after {elapsed * 1000:.0f} ms")
    return elapsed


def _stored_valid(server: Server, admin: dict, device_id: int, ts: float) -> bool | None:
    response = httpx.get(server.base + API + "/readings", headers=admin, timeout=10,
                         params={"device_id": device_id, "start": ts, "end": ts,
                                 "include_invalid": True})
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    return items[0]["valid"] if items else None


def test_a_rotated_key_is_refused_by_the_other_process_at_once(servers, admin):
    a, b = servers
    device = _device(a, admin, "rotated")
    old = device["api_key"]
    assert _post(b, old).status_code == 202  # B now holds the old key in its cache
    rotated = httpx.post(a.base + API + f"/devices/{device['id']}/rotate-key", headers=admin,
                         timeout=10)
    assert rotated.status_code == 200, rotated.text
    _until(lambda: _post(b, old).status_code == 401, "key rotation")
    assert _post(b, rotated.json()["api_key"]).status_code == 202


def test_a_deactivated_device_is_refused_by_the_other_process_at_once(servers, admin):
    a, b = servers
    device = _device(a, admin, "deactivated")
    assert _post(b, device["api_key"]).status_code == 202
    changed = httpx.patch(a.base + API + f"/devices/{device['id']}", headers=admin,
                          json={"status": "inactive"}, timeout=10)
    assert changed.status_code == 200, changed.text
    _until(lambda: _post(b, device["api_key"]).status_code == 403, "deactivation")


def test_a_new_valid_range_applies_in_the_other_process_at_once(servers, admin):
    a, b = servers
    device = _device(a, admin, "ranged")
    assert _post(b, device["api_key"]).status_code == 202  # B caches the sensor, no range
    sensors = httpx.get(a.base + API + "/sensors", headers=admin, timeout=10,
                        params={"device_id": device["id"]}).json()["items"]
    (sensor,) = sensors
    changed = httpx.patch(a.base + API + f"/sensors/{sensor['id']}", headers=admin,
                          json={"valid_min": -10, "valid_max": 10}, timeout=10)
    assert changed.status_code == 200, changed.text

    def outside_is_invalid() -> bool:
        ts = T0 + next(_times)
        assert _post(b, device["api_key"], {"ts": ts, "values": {"temperature": 21.5}}
                     ).status_code == 202
        return _stored_valid(a, admin, device["id"], ts) is False

    _until(outside_is_invalid, "a sensor's valid range")


def test_new_invalid_tags_apply_in_the_other_process_at_once(servers, admin):
    a, b = servers
    device = _device(a, admin, "tagged")

    def tagged(ts: float) -> dict:
        return {"readings": [{"key": "temperature", "value": 1.5, "ts": ts,
                              "tags": ["calibrating"]}]}

    ts = T0 + next(_times)
    assert _post(b, device["api_key"], tagged(ts)).status_code == 202  # B caches the tags
    assert _stored_valid(a, admin, device["id"], ts) is True
    before = httpx.get(a.base + API + "/organizations/me", headers=admin, timeout=10).json()
    changed = httpx.patch(a.base + API + "/organizations/me", headers=admin, timeout=10,
                          json={"invalid_tags": [*before["invalid_tags"], "calibrating"]})
    assert changed.status_code == 200, changed.text

    def tagged_is_invalid() -> bool:
        ts = T0 + next(_times)
        assert _post(b, device["api_key"], tagged(ts)).status_code == 202
        return _stored_valid(a, admin, device["id"], ts) is False

    _until(tagged_is_invalid, "the organization's invalid tags")
