"""Alerts and webhooks across real ``telemetra serve`` processes: a webhook still pending when
the server is killed with -9 is delivered after the restart; two processes on one PostgreSQL
hit by the same condition at once open one alert."""

import threading

import httpx
import pytest

from tests.alerts.conftest import Receiver, eventually, verify
from tests.server import API, Server, free_port

SECRET = "receiver-shared-secret-0123456789"


def _client(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.base + API, headers=server.login(), timeout=30)


def _alerts(client: httpx.Client, **params) -> list:
    response = client.get("/alerts", params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_a_pending_webhook_is_delivered_after_kill_9_and_restart(database_url, tmp_path):
    port = free_port()  # nothing listens there yet: the receiver is down when the alert fires
    server = Server(database_url, tmp_path / "server.log")
    server.start()
    hook = None
    try:
        with _client(server) as client:
            device = client.post("/devices", json={"name": "greenhouse"}).json()
            rule = client.post("/alert-rules", json={
                "name": "too hot", "key": "temperature", "condition": "gt", "threshold": 30,
                "device_id": device["id"], "webhook_url": f"http://127.0.0.1:{port}/hook",
                "webhook_secret": SECRET})
            assert rule.status_code == 201, rule.text
            sent = client.post("/readings", headers={"X-API-Key": device["api_key"]},
                               json={"temperature": 35})
            assert sent.status_code == 202
            alert = eventually(lambda: _alerts(client))[0]
            failed = eventually(lambda: (lambda w: w if w and w["attempts"] >= 1 else None)(
                client.get(f"/alerts/{alert['id']}").json()["webhook"]), timeout=30)
            assert failed["state"] == "pending" and failed["last_error"]
        server.kill()
        hook = Receiver(port=port)
        server.start()
        delivered = eventually(lambda: hook.delivered(), timeout=60)
        body = verify(SECRET, delivered[0])
        assert body["event"] == "alert.fired" and body["alert"]["id"] == alert["id"]
        with _client(server) as client:
            shown = eventually(lambda: (lambda w: w if w["state"] == "delivered" else None)(
                client.get(f"/alerts/{alert['id']}").json()["webhook"]), timeout=30)
            assert shown["attempts"] >= 2
    finally:
        server.stop()
        if hook is not None:
            hook.close()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_two_processes_hit_by_one_condition_at_once_open_one_alert(database_url, tmp_path):
    servers = [Server(database_url, tmp_path / f"server{n}.log") for n in range(2)]
    for server in servers:
        server.start()
    try:
        clients = [_client(server) for server in servers]
        first = clients[0]
        devices = [first.post("/devices", json={"name": f"oven-{n}"}).json() for n in range(4)]
        rule = first.post("/alert-rules", json={
            "name": "too hot", "key": "temperature", "condition": "gt", "threshold": 30})
        assert rule.status_code == 201, rule.text
        for device in devices:  # the sensor exists before the race
            assert first.post("/readings", headers={"X-API-Key": device["api_key"]},
                              json={"temperature": 20}).status_code == 202
        barrier = threading.Barrier(len(devices) * len(servers))
        statuses = []

        def hit(server: Server, device: dict) -> None:
            with httpx.Client(base_url=server.base + API, timeout=30) as client:
                barrier.wait()
                for value in (40, 41, 42):
                    statuses.append(client.post("/readings", json={"temperature": value},
                                                headers={"X-API-Key": device["api_key"]}
                                                ).status_code)

        threads = [threading.Thread(target=hit, args=(server, device))
                   for device in devices for server in servers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [202] * len(statuses)
        eventually(lambda: len(_alerts(first)) == len(devices))
        # a late second opening would show here: wait, then count again, from both processes
        marker = first.post("/alert-rules", json={
            "name": "marker", "key": "marker", "condition": "gt", "threshold": 0})
        for server in servers:
            assert httpx.post(server.base + API + "/readings", json={"marker": 1},
                              headers={"X-API-Key": devices[0]["api_key"]}).status_code == 202
        eventually(lambda: len(_alerts(first, rule_id=marker.json()["id"])) == 1)
        for client in clients:
            opened = _alerts(client, rule_id=rule.json()["id"])
            assert sorted(a["device_id"] for a in opened) == sorted(d["id"] for d in devices)
        # the episode is shared: cleared through one process, hit again through the other,
        # it opens a second alert
        device = devices[0]
        assert httpx.post(servers[0].base + API + "/readings", json={"temperature": 10},
                          headers={"X-API-Key": device["api_key"]}).status_code == 202
        eventually(lambda: _alerts(first, device_id=device["id"], rule_id=rule.json()["id"])[0][
            "state"] == "resolved")
        assert httpx.post(servers[1].base + API + "/readings", json={"temperature": 50},
                          headers={"X-API-Key": device["api_key"]}).status_code == 202
        eventually(lambda: len(_alerts(first, device_id=device["id"],
                                       rule_id=rule.json()["id"])) == 2)
        for client in clients:
            client.close()
    finally:
        for server in servers:
            server.stop()
