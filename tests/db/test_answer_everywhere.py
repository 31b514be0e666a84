"""A change that must be seen at once is answered only once every process applied it.

Two real ``telemetra serve`` processes on one database (both backends): a key rotated through
A is refused by B on the very next request, every time (no waiting, no retry), and the new key
is accepted; the same for a deactivated device and for one made active again. A third process
killed with -9 makes changes wait (at most about a second, with a warning in the log) only
until its heartbeat expires, never after.
"""

import re
import time
from collections.abc import Iterator

import httpx
import pytest

from telemetra.db.relay.base import PEER_EXPIRY_SECONDS
from tests.server import API, Server

T0 = 1767268800.0
ROUNDS = 15
LATE = re.compile(r"a change is answered before \d+ other process")

_times = iter(range(1, 1_000_000))


@pytest.fixture(scope="module")
def servers(databases, tmp_path_factory) -> Iterator[tuple[Server, Server, str]]:
    database_url = databases.new()
    logs = tmp_path_factory.mktemp("everywhere")
    a, b = Server(database_url, logs / "a.log"), Server(database_url, logs / "b.log")
    a.start()
    try:
        b.start()
        try:
            yield a, b, database_url
        finally:
            b.stop()
    finally:
        a.stop()


@pytest.fixture(scope="module")
def admin(servers) -> dict:
    return servers[0].login()


def _post(server: Server, key: str) -> int:
    return httpx.post(server.base + API + "/readings", headers={"X-API-Key": key}, timeout=10,
                      json={"ts": T0 + next(_times), "values": {"temperature": 21.5}}
                      ).status_code


def _device(server: Server, admin: dict, name: str) -> dict:
    response = httpx.post(server.base + API + "/devices", headers=admin, json={"name": name},
                          timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def _rotate(server: Server, admin: dict, device_id: int) -> str:
    response = httpx.post(server.base + API + f"/devices/{device_id}/rotate-key",
                          headers=admin, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["api_key"]


def _late_answers(server: Server) -> int:
    return len(LATE.findall(server.log_path.read_text(errors="replace")))


def test_a_rotated_key_is_refused_by_the_other_process_on_the_next_request(servers, admin):
    a, b, _ = servers
    device = _device(a, admin, "rotated")
    late = _late_answers(a)
    key = device["api_key"]
    answers = []
    for _ in range(ROUNDS):
        assert _post(b, key) == 202  # B holds this key in its cache
        old, key = key, _rotate(a, admin, device["id"])
        answers.append((_post(b, old), _post(b, key)))
    assert answers == [(401, 202)] * ROUNDS
    assert _late_answers(a) == late  # and none of them waited for the bound


def test_a_deactivated_device_is_refused_by_the_other_process_on_the_next_request(servers,
                                                                                  admin):
    a, b, _ = servers
    device = _device(a, admin, "deactivated")
    late = _late_answers(a)
    answers = []
    for _ in range(ROUNDS):
        assert _post(b, device["api_key"]) == 202
        for status in ("inactive", "active"):
            changed = httpx.patch(a.base + API + f"/devices/{device['id']}", headers=admin,
                                  json={"status": status}, timeout=10)
            assert changed.status_code == 200, changed.text
            answers.append((status, _post(b, device["api_key"])))
    assert answers == [("inactive", 403), ("active", 202)] * ROUNDS
    assert _late_answers(a) == late


def test_a_process_killed_with_9_delays_changes_only_until_its_heartbeat_expires(
        servers, admin, tmp_path):
    a, b, database_url = servers
    device = _device(a, admin, "while a peer died")
    c = Server(database_url, tmp_path / "c.log")
    c.start()
    try:
        assert _post(c, device["api_key"]) == 202
        time.sleep(1.5)  # heartbeats: A and B know C
        c.kill()
        before = _late_answers(a)
        started = time.monotonic()
        _rotate(a, admin, device["id"])  # C can no longer say it applied this
        waited = time.monotonic() - started
        print(f"a change right after the kill answered in {waited:.2f}s")
        assert _late_answers(a) == before + 1  # answered anyway, with a warning
        time.sleep(PEER_EXPIRY_SECONDS + 0.5)
        for _ in range(5):
            key = _rotate(a, admin, device["id"])
            assert _post(b, key) == 202
        assert _late_answers(a) == before + 1  # C expired: nobody waits for it any more
    finally:
        c.stop()
