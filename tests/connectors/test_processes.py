"""Two ``telemetra serve`` processes on one database never pull one connector at once: the
fake upstream counts its requests and how many were in flight together, while both
processes' jobs pull a slow upstream every second and a manual run is sent to each."""

import threading
import time

import httpx

from tests.connectors.upstream import Upstream
from tests.server import API, Server

LITTLE = [157, 42, 76, 190]


def _wait(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def test_two_processes_never_pull_one_connector_at_once(databases, tmp_path):
    # ``databases`` is of each backend: on SQLite the two processes share one file.
    upstream = Upstream().start()
    database_url = databases.new()
    a = Server(database_url, tmp_path / "a.log")
    b = Server(database_url, tmp_path / "b.log")
    try:
        a.start()
        b.start()
        headers = a.login()
        device = httpx.post(a.base + API + "/devices", headers=headers,
                            json={"name": "legacy"}).json()
        now = int(time.time())
        # Each pull takes longer than the interval: unleased, the two jobs would overlap.
        url = upstream.answer("/slow", [{"time": now - n, "value": LITTLE} for n in (3, 2, 1)],
                              delay=1.2)
        created = httpx.post(a.base + API + "/connectors", headers=headers, json={
            "name": "legacy", "kind": "http_pull", "device_id": device["id"], "url": url,
            "interval_seconds": 1})
        assert created.status_code == 201, created.text
        connector_id = created.json()["id"]

        _wait(lambda: len(upstream.hits_of("/slow")) >= 6)
        assert upstream.max_in_flight == 1

        # A manual run on each process at once: the second waits for the first's lease.
        answers = {}

        def run(server: Server) -> None:
            answers[server.port] = httpx.post(
                server.base + API + f"/connectors/{connector_id}/run",
                headers=server.login(), timeout=60)

        threads = [threading.Thread(target=run, args=(server,)) for server in (a, b)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for answer in answers.values():
            assert answer.status_code == 200, answer.text
            assert answer.json()["fetched"] == 3
        assert upstream.max_in_flight == 1

        stored = httpx.get(a.base + API + "/readings", headers=headers,
                           params={"device_id": device["id"]}).json()["items"]
        assert len(stored) == 3  # pulled many times, by both, stored once
        shown = httpx.get(b.base + API + f"/connectors/{connector_id}", headers=headers).json()
        assert shown["last_error"] is None and shown["last_result"]["duplicates"] == 3
    finally:
        for server in (b, a):
            server.stop()
        upstream.stop()
    for log in ("a.log", "b.log"):
        assert "Traceback" not in (tmp_path / log).read_text()

