"""At-least-once, stored once, with real ``telemetra serve`` processes: the platform killed
while a device keeps publishing QoS 1 loses nothing and stores nothing twice; two platform
processes share the topics, so each message is stored once."""

import threading
import time

import httpx

from tests.mosquitto import Broker, Device
from tests.mqtt.conftest import eventually
from tests.server import API, Server

T0 = 1767268800  # 2026-01-01T12:00:00Z
KEYS = ("temperature", "humidity", "pressure")


def _message(n: int) -> dict:
    return {"ts": T0 + n, "values": {key: n + index for index, key in enumerate(KEYS)}}


def _publish(broker: Broker, device_id: int, count: int, done: threading.Event,
             progress: list) -> None:
    device = Device(broker)
    topic = f"telemetra/devices/{device_id}/readings"
    for n in range(count):
        info = device.publish(topic, _message(n), timeout=30)
        assert info.is_published()
        progress.append(n)
        time.sleep(0.001)
    device.close()
    done.set()


def _count(server: Server, device_id: int) -> int:
    headers = server.login()
    total, cursor = 0, None
    with httpx.Client(base_url=server.base + API, timeout=30) as client:
        while True:
            params = {"device_id": device_id, "limit": 10000}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/readings", headers=headers, params=params).json()
            total += len(page["items"])
            cursor = page["next_cursor"]
            if not cursor:
                return total


def _device(server: Server) -> int:
    response = httpx.post(server.base + API + "/devices", headers=server.login(),
                          json={"name": "publisher"})
    assert response.status_code == 201
    return response.json()["id"]


def _connected(server: Server) -> bool:
    try:
        return httpx.get(server.base + "/health", timeout=2).json()["mqtt"] == "connected"
    except httpx.HTTPError:
        return False


def test_killing_the_platform_mid_stream_loses_nothing_and_stores_nothing_twice(
        database_url, tmp_path):
    broker = Broker(tmp_path / "broker")
    broker.start()
    server = Server(database_url, tmp_path / "server.log", mqtt_url=broker.url,
                    mqtt_auth="open", mqtt_client_id="durable")
    server.start()
    try:
        eventually(lambda: _connected(server))
        device_id = _device(server)
        count = 1500
        done, progress = threading.Event(), []
        publisher = threading.Thread(target=_publish,
                                     args=(broker, device_id, count, done, progress))
        publisher.start()
        eventually(lambda: len(progress) > count // 3, timeout=30)
        server.kill()  # no shutdown, no flush; the broker keeps what was not acknowledged
        eventually(lambda: len(progress) > 2 * count // 3, timeout=30)
        server.start()
        assert done.wait(60)
        publisher.join()
        eventually(lambda: _count(server, device_id) == count * len(KEYS), timeout=60,
                   interval=0.5)
        time.sleep(1)  # and no more arrive later
        assert _count(server, device_id) == count * len(KEYS)
    finally:
        server.stop()
        broker.stop()


def test_two_platform_processes_share_the_topics_and_store_each_message_once(
        database_url, tmp_path):
    broker = Broker(tmp_path / "broker")
    broker.start()
    # No client id set: each process on this host claims its own (slot 0, slot 1).
    servers = [Server(database_url, tmp_path / f"server-{n}.log", mqtt_url=broker.url,
                      mqtt_auth="open", mqtt_client_id=f"pair-{tmp_path.name}")
               for n in range(2)]
    try:
        for server in servers:
            server.start()
            eventually(lambda server=server: _connected(server))
        device_id = _device(servers[0])
        count = 600
        done, progress = threading.Event(), []
        _publish(broker, device_id, count, done, progress)
        eventually(lambda: _count(servers[0], device_id) == count * len(KEYS), timeout=60,
                   interval=0.5)
        received = []
        for server in servers:
            metrics = httpx.get(server.base + API + "/system/metrics",
                                headers=server.login()).json()["mqtt"]
            received.append(metrics["received"])
            assert metrics["readings_duplicate"] == 0
        assert sum(received) == count and min(received) > 0, received
    finally:
        for server in servers:
            server.stop()
        broker.stop()
