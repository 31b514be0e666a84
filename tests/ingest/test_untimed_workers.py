"""Readings sent without a time, to two worker processes, for one sensor: both processes can
give two of them the same microsecond. Each was answered 202 ``duplicates: 1`` and lost (74 of
about 50,000 in 10 s of wrk). A reading the server timed is never a re-send: all are stored."""

import threading
import time

import httpx

from tests.server import API, Server

SECONDS = 6.0
CLIENTS = 16


def _post_untimed(base: str, key: str, answers: list, stop: threading.Event) -> None:
    with httpx.Client(base_url=base + API, timeout=30) as client:
        while not stop.is_set():
            response = client.post("/readings", headers={"X-API-Key": key},
                                   json={"temperature": 21.5})
            answers.append((response.status_code, response.json()))


def _stored(server: Server, device_id: int) -> int:
    headers, count, cursor = server.login(), 0, None
    with httpx.Client(base_url=server.base + API, timeout=60) as client:
        while True:
            params = {"device_id": device_id, "limit": 10000, "include_invalid": True}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/readings", headers=headers, params=params).json()
            count += len(page["items"])
            cursor = page["next_cursor"]
            if not cursor:
                return count


def test_untimed_readings_posted_to_two_workers_are_all_stored(database_url, tmp_path):
    server = Server(database_url, tmp_path / "server.log", workers=2)
    server.start()
    try:
        device = httpx.post(server.base + API + "/devices", headers=server.login(),
                            json={"name": "untimed"}).json()
        answers, stop = [], threading.Event()
        threads = [threading.Thread(target=_post_untimed,
                                    args=(server.base, device["api_key"], answers, stop))
                   for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        time.sleep(SECONDS)
        stop.set()
        for thread in threads:
            thread.join(30)
        statuses = {status for status, _ in answers}
        assert statuses == {202}, statuses
        assert len(answers) > 1000, f"too few requests to mean anything: {len(answers)}"
        duplicates = sum(body["duplicates"] for _, body in answers)
        assert duplicates == 0, f"{duplicates} of {len(answers)} untimed readings not stored"
        assert _stored(server, device["id"]) == len(answers)
    finally:
        server.stop()
