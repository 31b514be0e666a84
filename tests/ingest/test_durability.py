"""Nothing acknowledged is lost, tested by killing things, on a real server process.

- kill -9 of the server while clients post: after a restart every reading answered 202 is
  stored (SQLite and PostgreSQL).
- PostgreSQL going away mid-load: requests fail fast with 503 (no hang, no 500), and ingestion
  resumes by itself when the database returns.
"""

import threading
import time

import httpx
import pytest

from tests import pgcluster
from tests.server import API, Server

T0 = 1767268800.0


def _poster(server: Server, key: str, name: str, acked: list, statuses: list,
            stop: threading.Event, durations: list | None = None) -> None:
    n = 0
    with httpx.Client(base_url=server.base + API, timeout=30) as client:
        while not stop.is_set():
            n += 1
            ts = T0 + n
            started = time.monotonic()
            try:
                response = client.post("/readings", headers={"X-API-Key": key},
                                       json={"ts": ts, "values": {name: n}})
            except httpx.HTTPError:
                statuses.append("error")
                time.sleep(0.02)
                continue
            if durations is not None:
                durations.append(time.monotonic() - started)
            statuses.append(response.status_code)
            if response.status_code == 202:
                acked.append((name, ts))


def _stored(server: Server, device_id: int) -> set:
    headers = server.login()
    found, cursor = set(), None
    with httpx.Client(base_url=server.base + API, timeout=30) as client:
        while True:
            params = {"device_id": device_id, "limit": 10000, "include_invalid": True}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/readings", headers=headers, params=params).json()
            found |= {(r["key"], r["ts"]) for r in page["items"]}
            cursor = page["next_cursor"]
            if not cursor:
                return found


def _iso(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def test_kill_9_loses_nothing_that_was_acknowledged(database_url, tmp_path):
    server = Server(database_url, tmp_path / "server.log")
    server.start()
    try:
        headers = server.login()
        device = httpx.post(server.base + API + "/devices", headers=headers,
                            json={"name": "crash-test"}).json()
        acked, statuses, stop = [], [], threading.Event()
        threads = [threading.Thread(target=_poster, args=(server, device["api_key"], f"k{i}",
                                                          acked, statuses, stop))
                   for i in range(6)]
        for thread in threads:
            thread.start()
        time.sleep(2.0)
        server.kill()
        time.sleep(0.3)
        stop.set()
        for thread in threads:
            thread.join(30)
        assert len(acked) > 50, f"too few acknowledged to mean anything: {len(acked)}"
        server.start()
        stored = _stored(server, device["id"])
        lost = [(name, ts) for name, ts in acked if (name, _iso(ts)) not in stored]
        assert lost == [], f"{len(lost)} of {len(acked)} acknowledged readings were lost"
    finally:
        server.stop()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_database_going_away_gives_503s_and_ingestion_resumes(tmp_path, backend):
    with pgcluster.throwaway_cluster(durable=True) as cluster:
        url = pgcluster.create_database(cluster.url, "telemetra_outage")
        server = Server(url, tmp_path / "server.log")
        server.start()
        try:
            headers = server.login()
            device = httpx.post(server.base + API + "/devices", headers=headers,
                                json={"name": "outage"}).json()
            acked, statuses, durations, stop = [], [], [], threading.Event()
            threads = [threading.Thread(target=_poster, args=(
                server, device["api_key"], f"k{i}", acked, statuses, stop, durations))
                for i in range(4)]
            for thread in threads:
                thread.start()
            time.sleep(1.0)
            cluster.stop()  # the database goes away (immediate shutdown)
            time.sleep(3.0)
            during = list(statuses)
            health = httpx.get(server.base + "/health", timeout=10)
            cluster.start()  # and comes back on the same port
            resumed_at = len(statuses)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and 202 not in statuses[resumed_at:]:
                time.sleep(0.2)
            time.sleep(0.5)
            stop.set()
            for thread in threads:
                thread.join(30)
            assert health.status_code == 503 and health.json()["database"] == "down"
            assert 503 in during, f"no 503 while the database was down: {set(during)}"
            assert 500 not in statuses and "error" not in statuses, set(statuses)
            assert max(durations) < 15, f"a request hung for {max(durations):.1f} s"
            assert 202 in statuses[resumed_at:], "ingestion did not resume"
            stored = _stored(server, device["id"])
            lost = [a for a in acked if (a[0], _iso(a[1])) not in stored]
            assert lost == []
        finally:
            server.stop()
