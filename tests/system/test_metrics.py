"""GET /metrics (Prometheus text, read with prometheus-client's own parser) and the people's
view, GET /api/v1/system/metrics: counters move as readings arrive over HTTP, the fast path,
import and MQTT (a real Mosquitto), and with several workers a scrape sees all of them."""

import uuid

import httpx
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from telemetra.app import create_app
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, make_settings
from tests.helpers import Api, device_key
from tests.mosquitto import Broker, Device
from tests.mqtt.conftest import eventually, start_platform
from tests.server import API, Server


def scrape(get) -> dict:
    """{metric family: [(sample name, labels, value)]} of one scrape."""
    response = get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {family.name: [(s.name, s.labels, s.value) for s in family.samples]
            for family in text_string_to_metric_families(response.text)}


def value(families: dict, name: str, sample: str | None = None, **labels) -> float:
    return sum(v for s, found, v in families.get(name, [])
               if (sample is None or s == sample) and all(found.get(k) == w
                                                          for k, w in labels.items()))


def ingested(families: dict, transport: str) -> float:
    return value(families, "telemetra_readings_ingested", "telemetra_readings_ingested_total",
                 transport=transport)


def requests(families: dict, route: str, **labels) -> float:
    return value(families, "telemetra_http_request_duration_seconds",
                 "telemetra_http_request_duration_seconds_count", route=route, **labels)


def test_counters_move_with_readings_over_http_the_fast_path_and_import(api, root, client):
    device = api.device(root)
    key = device_key(device["api_key"])
    before = scrape(client.get)

    fast = api.post("/readings", key, json=[{"key": "t", "value": i,
                                             "ts": f"2026-01-01T00:00:0{i}Z"} for i in range(3)])
    assert fast.status_code == 202 and fast.json()["accepted"] == 3, fast.text
    by_path = api.post(f"/devices/{device['id']}/readings", key, json={"t": 1.5})
    assert by_path.status_code == 202, by_path.text
    routed = api.post("/readings", root, params={"device_id": device["id"]},
                      json={"h": 40, "p": 1000})
    assert routed.status_code == 202 and routed.json()["accepted"] == 2, routed.text
    again = api.post("/readings", key, json=[{"key": "t", "value": 0,
                                              "ts": "2026-01-01T00:00:00Z"}])
    assert again.json()["duplicates"] == 1  # stored before: not counted again
    imported = api.post("/readings/import", {**root, "content-type": "text/csv"},
                        params={"device_id": device["id"]}, content="key,ts,value\nx,2026-01-02T00:00:00Z,1\n"
                                "x,2026-01-02T00:00:01Z,2\n")
    assert imported.status_code == 200 and imported.json()["accepted"] == 2, imported.text
    assert api.get(f"/devices/{device['id']}", root).status_code == 200
    assert client.get("/api/v1/no/such/path/12345").status_code == 404

    after = scrape(client.get)
    assert ingested(after, "fastpath") - ingested(before, "fastpath") == 4
    assert ingested(after, "http") - ingested(before, "http") == 2
    assert ingested(after, "import") - ingested(before, "import") == 2
    # Labelled by route template, the fast path's included; never by a raw path.
    fast_route = requests(after, "/api/v1/readings", method="POST", status="202")
    assert fast_route - requests(before, "/api/v1/readings", method="POST", status="202") == 3
    assert requests(after, "/api/v1/devices/{device_id}/readings", method="POST",
                    status="202") >= 1
    assert requests(after, "/api/v1/devices/{device_id}", method="GET", status="200") >= 1
    assert requests(after, "unmatched", method="GET", status="404") >= 1
    routes = {labels["route"] for _, labels, _ in
              after["telemetra_http_request_duration_seconds"]}
    assert not any(part.isdigit() for route in routes for part in route.split("/")), routes
    # The writer's batches, and the gauges of state.
    assert value(after, "telemetra_writer_batch_rows", "telemetra_writer_batch_rows_count") \
        > value(before, "telemetra_writer_batch_rows", "telemetra_writer_batch_rows_count")
    assert "telemetra_writer_queue_rows" in after
    assert "telemetra_websocket_connections" in after


def test_a_websocket_shows_in_the_connections_gauge(api, root, client):
    token = root["Authorization"].removeprefix("Bearer ")
    with client.websocket_connect(f"{API}/ws?token={token}") as socket:
        socket.send_json({"type": "ping"})
        assert socket.receive_json()["type"] == "pong"
        assert value(scrape(client.get), "telemetra_websocket_connections") == 1
    assert value(scrape(client.get), "telemetra_websocket_connections") == 0


def test_the_people_s_view_has_rates_and_totals(api, root):
    device = api.device(root)
    first = api.get("/system/metrics", root)
    assert first.status_code == 200, first.text
    for i in range(5):
        assert api.post("/readings", device_key(device["api_key"]),
                        json={"v": i}).status_code == 202
    second = api.get("/system/metrics", root).json()
    assert second["readings_ingested"]["fastpath"] - first.json()["readings_ingested"][
        "fastpath"] == 5
    assert second["readings_per_second"] > 0 and second["requests_per_minute"] > 0
    assert second["rate_window_seconds"] > 0
    assert second["websocket_connections"] == 0 and second["ingest_queue_rows"] == 0
    member = api.add_user(root, role="admin")[1]
    assert api.get("/system/metrics", member).status_code == 403


def test_the_metrics_token_is_asked_for_when_set(database_url):
    settings = make_settings(database_url, metrics_token="scrape-me-0123456789")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        missing = client.get("/metrics")
        assert missing.status_code == 401
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.headers["www-authenticate"] == "Bearer"
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}
                          ).status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Basic scrape-me-0123456789"}
                          ).status_code == 401
        good = client.get("/metrics", headers={"Authorization": "Bearer scrape-me-0123456789"})
        assert good.status_code == 200 and "telemetra_readings_ingested" in good.text


def test_mqtt_messages_readings_and_rejections_are_counted(database_url, tmp_path):
    broker = Broker(tmp_path / "broker")
    broker.start()
    client = start_platform(database_url, broker)
    try:
        api = Api(client)
        root = api.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        device = api.device(root)
        before = scrape(client.get)
        publisher = Device(broker)
        topic = f"{client.app.state.settings.mqtt_prefix}/devices/{device['id']}/readings"
        assert publisher.publish(topic, {"temperature": 21.5, "humidity": 40}).rc == 0
        assert publisher.publish(topic, b"{not json").rc == 0
        publisher.close()

        def moved():
            now = scrape(client.get)
            return (ingested(now, "mqtt") - ingested(before, "mqtt") == 2
                    and value(now, "telemetra_mqtt_rejected_messages",
                              reason="invalid JSON")
                    - value(before, "telemetra_mqtt_rejected_messages",
                            reason="invalid JSON") == 1) and now

        after = eventually(moved)
        assert value(after, "telemetra_mqtt_messages") - value(before,
                                                               "telemetra_mqtt_messages") == 2
        assert value(after, "telemetra_mqtt_connected") == 1
    finally:
        client.__exit__(None, None, None)
        broker.stop()


def test_a_scrape_sees_every_worker(tmp_path):
    """``--workers 2``: whichever worker answers the scrape, the counters are both's."""
    server = Server(f"sqlite:///{tmp_path / 'workers.db'}", tmp_path / "server.log", workers=2)
    server.start()
    try:
        headers = server.login()
        key = httpx.post(server.base + API + "/devices", headers=headers,
                         json={"name": f"w-{uuid.uuid4().hex[:6]}"}).json()["api_key"]
        sent = 0
        # New connections, so both workers take some of them.
        for i in range(40):
            response = httpx.post(server.base + API + "/readings", headers={"X-API-Key": key},
                                  json={"v": i, "w": i})
            assert response.status_code == 202, response.text
            sent += response.json()["accepted"]
        for _ in range(6):  # several scrapes, answered by either worker: each sees it all
            families = scrape(lambda path: httpx.get(server.base + path))
            assert ingested(families, "fastpath") == sent == 80
            assert requests(families, "/api/v1/readings", method="POST", status="202") == 40
    finally:
        server.stop()
