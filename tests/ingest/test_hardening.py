"""Issue 9, against a running ``telemetra serve`` on each backend: one tenant's bad data must
not fail another's, and one body of 100,000 new keys must not stall the server."""

import threading
import time

import httpx
import orjson

from tests.helpers import Api, device_key
from tests.server import API, Server

T0 = 1767268800  # 2026-01-01T12:00:00Z


# (raw body, what the 422 must name). The last one gets past the decoder (the lenient parser
# lets a lone surrogate through, which nothing can encode): the writer refuses it alone.
POISON = [
    (orjson.dumps({"ts": "0001-01-01T00:00:00Z", "values": {"p": 1}}), "before 1970"),
    (orjson.dumps({"ts": "9999-12-31T23:59:59Z", "values": {"p": 1}}), "in the future"),
    (orjson.dumps({"readings": [{"key": "p", "value": 1, "ts": T0, "tags": ["a\u0000b"]}]}),
     "NUL"),
    (b'{"data": {"p": 1}, "timestamp": 1767268800, "metadata": ' + b'{"a": ' * 600
     + b"1" + b"}" * 600 + b"}", "deep"),
    (b'{"readings": [{"key": "p", "value": NaN}, '
     b'{"key": "p", "value": 1, "ts": 1767268800, "tags": ["\\ud800"]}]}', "refused"),
]


def _server(database_url, tmp_path) -> Server:
    server = Server(database_url, tmp_path / "server.log", signup_mode="tenant")
    server.start()
    return server


def _clean(base: str, key: str, name: str, acked: list, statuses: list,
           stop: threading.Event) -> None:
    n = 0
    with httpx.Client(base_url=base + API, timeout=60) as client:
        while not stop.is_set():
            n += 1
            response = client.post("/readings", headers={"X-API-Key": key},
                                   json={"ts": T0 + n, "values": {name: n}})
            statuses.append(response.status_code)
            if response.status_code == 202:
                acked.append((name, n))


def _poisoned(base: str, key: str, answers: list, stop: threading.Event) -> None:
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    with httpx.Client(base_url=base + API, timeout=60) as client:
        while not stop.is_set():
            for raw, reason in POISON:
                response = client.post("/readings", headers=headers, content=raw)
                answers.append((reason, response.status_code, response.text[:300]))


def test_a_poisoned_tenant_never_fails_a_clean_one(database_url, tmp_path):
    """On PostgreSQL year 1, year 9999 or a NUL in a tag, on SQLite 600-deep metadata, sent in
    a loop, failed about a third of another tenant's writes with 503."""
    server = _server(database_url, tmp_path)
    try:
        with httpx.Client(base_url=server.base, timeout=60) as http:
            api = Api(http)
            clean_device = api.device(server.login())
            _, owner = api.signup_tenant_owner()
            bad_device = api.device(owner)
        acked, statuses, answers, stop = [], [], [], threading.Event()
        threads = [threading.Thread(target=_clean, args=(
            server.base, clean_device["api_key"], f"k{i}", acked, statuses, stop))
            for i in range(3)]
        threads += [threading.Thread(target=_poisoned, args=(
            server.base, bad_device["api_key"], answers, stop)) for _ in range(3)]
        for thread in threads:
            thread.start()
        time.sleep(4)
        stop.set()
        for thread in threads:
            thread.join(60)
        assert len(statuses) > 20 and len(answers) > 20
        assert set(statuses) == {202}, sorted(set(statuses))
        for reason, status, text in answers:
            assert status == 422 and reason in text, (reason, status, text)
        with httpx.Client(base_url=server.base, timeout=60) as http:
            stored = Api(http).get("/readings", server.login(), params={
                "device_id": clean_device["id"], "limit": 10000}).json()["items"]
            assert {(r["key"], int(r["value"])) for r in stored} == set(acked)
            assert Api(http).get("/readings", owner, params={
                "device_id": bad_device["id"]}).json()["items"] == []
    finally:
        server.stop()


def test_a_body_of_100000_new_keys_neither_stalls_the_server_nor_fails(database_url,
                                                                         tmp_path):
    """It stalled SQLite for 17-23 s (``/health`` included) and was a 503 on PostgreSQL; now
    the first 100 keys become sensors and the others are rejected, each with the reason."""
    server = _server(database_url, tmp_path)
    try:
        with httpx.Client(base_url=server.base, timeout=120) as http:
            api = Api(http)
            root = server.login()
            device = api.device(root)
            raw = orjson.dumps({f"{i:05x}": 1 for i in range(100_000)})
            assert len(raw) <= 1_048_576
            slowest, stop = [0.0], threading.Event()

            def watch_health() -> None:
                with httpx.Client(base_url=server.base, timeout=60) as watcher:
                    while not stop.is_set():
                        started = time.monotonic()
                        watcher.get("/health")
                        slowest[0] = max(slowest[0], time.monotonic() - started)
                        time.sleep(0.05)

            watcher = threading.Thread(target=watch_health)
            watcher.start()
            try:
                for known in (0, 100):  # the second finds the first's 100 and adds 100
                    response = api.post("/readings", {**device_key(device["api_key"]),
                                                      "Content-Type": "application/json"},
                                        content=raw)
                    assert response.status_code == 202, response.text[:500]
                    body = response.json()
                    assert body["accepted"] == known + 100
                    assert len(body["rejected"]) == 100_000 - known - 100
                    assert body["rejected"][0] == {
                        "index": known + 100, "key": f"{known + 100:05x}",
                        "reason": "too many new sensors in one request (at most 100)"}
            finally:
                stop.set()
                watcher.join(60)
            assert slowest[0] < 5, f"/health waited {slowest[0]:.1f} s"
            sensors = api.get("/sensors", root, params={"device_id": device["id"]}).json()
            assert sensors["total"] == 200
    finally:
        server.stop()
