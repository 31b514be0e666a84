"""Committed readings cross processes to the live views that asked for them.

Process A is a real ``telemetra serve``; process B (tests/db/readings_probe.py) shares its
database and runs the product's relay and broadcast with a ``ReadingsCommitted`` subscriber
wanting one organization's readings, as a live socket does. Over PostgreSQL NOTIFY, the SQLite
table, and a real ``redis-server`` (on both databases): rows posted to A reach B within 1 s of
their 202, only for the organizations B asked for, and follow B's interest when it changes.
"""

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.redis_server import RedisServer
from tests.server import API, Server

ROOT = Path(__file__).resolve().parents[2]
WITHIN = 1.0  # seconds from a reading's 202 to its arrival in B
T0 = 1767268800.0
_times = iter(range(1, 1_000_000))


class Probe:
    """Process B: prints a JSON line per batch it receives."""

    def __init__(self, database_url: str, redis_url: str, organizations: list[int]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.db.readings_probe", database_url, redis_url or "-",
             ",".join(map(str, organizations))], cwd=ROOT, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.expect("ready", 60)

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def expect(self, wanted: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (line := self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
               ) != wanted:
            assert not line.startswith("Traceback"), line

    def batches(self, timeout: float) -> list[dict]:
        """The batches received within ``timeout`` seconds (at least one, or none at all)."""
        found = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.01)
            except queue.Empty:
                if found:
                    break
                continue
            if line.startswith("{"):
                found.append(json.loads(line))
        return found

    def tell(self, line: str) -> None:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


@pytest.fixture(scope="module", params=["database", "redis"])
def deployment(request, databases, tmp_path_factory) -> Iterator[tuple[Server, str, str]]:
    logs = tmp_path_factory.mktemp("readings")
    redis = RedisServer(logs / "redis").start() if request.param == "redis" else None
    database_url = databases.new()
    a = Server(database_url, logs / "a.log", signup_mode="tenant",
               redis_url=redis.url if redis else "")
    try:
        a.start()
        yield a, database_url, redis.url if redis else ""
    finally:
        a.stop()
        if redis:
            redis.stop()


def _organization_and_device(a: Server, headers: dict) -> tuple[int, str]:
    org = httpx.get(a.base + API + "/organizations/me", headers=headers, timeout=10).json()
    device = httpx.post(a.base + API + "/devices", headers=headers, json={"name": "probe"},
                        timeout=10)
    assert device.status_code == 201, device.text
    return org["id"], device.json()["api_key"]


def _tenant(a: Server) -> dict:
    name = f"tenant{next(_times)}"
    signed = httpx.post(a.base + API + "/auth/signup", timeout=10,
                        json={"username": name, "password": "tenant-password-123"})
    assert signed.status_code == 201, signed.text
    token = httpx.post(a.base + API + "/auth/login", timeout=10,
                       json={"username": name, "password": "tenant-password-123"})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def _post(a: Server, key: str, value: float) -> None:
    response = httpx.post(a.base + API + "/readings", headers={"X-API-Key": key}, timeout=10,
                          json={"ts": T0 + next(_times), "values": {"temperature": value}})
    assert response.status_code == 202, response.text


def test_readings_reach_the_other_process_for_its_organizations_only(deployment):
    a, database_url, redis_url = deployment
    org1, key1 = _organization_and_device(a, a.login())
    org2, key2 = _organization_and_device(a, _tenant(a))
    probe = Probe(database_url, redis_url, [org2])
    try:
        # Until A has heard B's interest (its next heartbeat, or at once on PostgreSQL).
        deadline = time.monotonic() + 10
        while not probe.batches(0.2):
            assert time.monotonic() < deadline, "B never received readings"
            _post(a, key2, 0.5)
        delays, seen = [], []
        for i in range(1, 8):
            _post(a, key1, -i)
            _post(a, key2, i)
            posted = time.monotonic()
            while i not in [v for batch in seen for v in batch["values"]]:
                assert time.monotonic() - posted < WITHIN, f"reading {i} not in B after 1 s"
                seen += probe.batches(0.05)
            delays.append(time.monotonic() - posted)
        seen += probe.batches(0.3)
        print(f"202 to B: max {max(delays) * 1000:.0f} ms")
        assert {org for batch in seen for org in batch["organization_ids"]} == {org2}
        assert all(v >= 0 for batch in seen for v in batch["values"])  # no org1 reading

        probe.tell(f"interest {org1}")
        probe.expect("interest set", 10)
        after, deadline = [], time.monotonic() + 10
        while -100.0 not in [v for batch in after for v in batch["values"]]:
            assert time.monotonic() < deadline, "B's new interest was never followed"
            _post(a, key2, 100)
            _post(a, key1, -100)
            after += probe.batches(0.2)
        assert {org for batch in after for org in batch["organization_ids"]} == {org1}
    finally:
        probe.stop()
