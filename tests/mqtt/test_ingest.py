"""Devices publishing to a real Mosquitto: every uplink topic, bad messages, the broker
going away. The platform runs in this process against each storage backend."""

import time

import pytest

from tests.helpers import device_key
from tests.mosquitto import Device
from tests.mqtt.conftest import Platform, eventually

NOW = int(time.time())

BODIES = [
    ({"temperature": 21.5, "humidity": 40}, {"temperature": 21.5, "humidity": 40.0}),
    ({"ts": NOW - 100, "values": {"pressure": 1013.2}}, {"pressure": 1013.2}),
    ({"data": {"co2": 415}, "metadata": {"fw": "1.2"}, "timestamp": NOW - 90}, {"co2": 415.0}),
    ({"readings": [{"key": "voltage", "value": 3.3, "ts": NOW - 80}]}, {"voltage": 3.3}),
    ([{"sensor_type": "light", "value": 120, "unit": "lx"}], {"light": 120.0}),
    ({"time": NOW - 70, "value": [157, 42, 76, 190]}, {"value": -0.19938130676746368}),
]


def test_readings_in_every_body_are_stored(platform: Platform, broker):
    device = platform.api.device(platform.root)
    publisher = Device(broker)
    for body, _ in BODIES:
        assert publisher.publish(platform.topic(device["id"], "readings"), body).rc == 0
    platform.wait_handled(len(BODIES))
    stored = {r["key"]: r["value"] for r in platform.readings(device["id"])}
    for _, expected in BODIES:
        for key, value in expected.items():
            assert stored[key] == pytest.approx(value)
    assert platform.metrics()["readings_accepted"] == 7
    # Any uplink counts as contact (written within a second).
    eventually(lambda: platform.api.get(f"/devices/{device['id']}/status", platform.root)
               .json()["online"] is True)
    publisher.close()


def test_a_redelivered_message_is_stored_once(platform: Platform, broker):
    device = platform.api.device(platform.root)
    publisher = Device(broker)
    body = {"ts": NOW - 10, "values": {"temperature": 20.0}}
    for _ in range(3):
        publisher.publish(platform.topic(device["id"], "readings"), body)
    metrics = platform.wait_handled(3)
    assert metrics["readings_accepted"] == 1 and metrics["readings_duplicate"] == 2
    assert len(platform.readings(device["id"])) == 1
    publisher.close()


def test_heartbeat_logs_and_status_topics(platform: Platform, broker):
    device = platform.api.device(platform.root)
    device_id = device["id"]
    publisher = Device(broker)
    publisher.publish(platform.topic(device_id, "heartbeat"), {"firmware_version": "2.0.1"})
    publisher.publish(platform.topic(device_id, "logs"),
                      [{"level": "error", "message": "sensor bus timeout"},
                       {"message": "rebooted"}])
    platform.wait_handled(2)
    got = platform.api.get(f"/devices/{device_id}", platform.root).json()
    assert got["firmware_version"] == "2.0.1" and got["online"] is True
    logs = platform.api.get(f"/devices/{device_id}/logs", platform.root).json()
    assert {line["message"] for line in logs["items"]} == {"sensor bus timeout", "rebooted"}

    publisher.publish(platform.topic(device_id, "status"), "offline")
    eventually(lambda: platform.api.get(f"/devices/{device_id}/status", platform.root)
               .json()["online"] is False)
    publisher.publish(platform.topic(device_id, "status"), {"online": True})
    eventually(lambda: platform.api.get(f"/devices/{device_id}/status", platform.root)
               .json()["online"] is True)
    publisher.close()


def test_last_will_marks_the_device_offline_at_once(platform: Platform, broker):
    device = platform.api.device(platform.root)
    status_topic = platform.topic(device["id"], "status")
    publisher = Device(broker, will=(status_topic, b"offline"))
    publisher.publish(platform.topic(device["id"], "readings"), {"temperature": 1})
    eventually(lambda: platform.api.get(f"/devices/{device['id']}/status", platform.root)
               .json()["online"] is True)
    publisher.client.socket().close()  # dies without DISCONNECT: the broker sends its will
    publisher.client.loop_stop()
    eventually(lambda: platform.api.get(f"/devices/{device['id']}/status", platform.root)
               .json()["online"] is False)


def test_bad_messages_are_counted_logged_and_never_stop_the_consumer(platform: Platform,
                                                                      broker):
    device = platform.api.device(platform.root)
    inactive = platform.api.device(platform.root, status="inactive")
    publisher = Device(broker)
    topic = platform.topic(device["id"], "readings")
    messages = [
        (topic, b"{not json"),
        (topic, {"ts": NOW - 5, "values": {"temperature": 1.0}}),
        (topic, b'"just a string"'),
        (topic, {"ts": NOW - 4, "values": {"temperature": 2.0}}),
        (platform.topic(999_999, "readings"), {"temperature": 3.0}),
        (topic, {"padding": "x" * 5000}),
        (platform.topic(inactive["id"], "readings"), {"temperature": 4.0}),
        (platform.topic(device["id"], "logs"), {"level": "loud", "message": "x"}),
        (topic, {"ts": NOW - 3, "values": {"temperature": 5.0, "label": "text"}}),
    ]
    for where, payload in messages:
        publisher.publish(where, payload)
    metrics = platform.wait_handled(len(messages))
    assert [r["value"] for r in platform.readings(device["id"])] == [1.0, 2.0, 5.0]
    assert platform.readings(inactive["id"]) == []
    assert metrics["rejected_by_reason"] == {
        "invalid JSON": 1, "unknown format": 1, "unknown device": 1, "payload too large": 1,
        "inactive device": 1, "invalid log lines": 1}
    assert metrics["rejected_by_device"][str(device["id"])] == 4
    assert metrics["readings_rejected"] == 1  # the string value, alone
    logs = platform.api.get(f"/devices/{device['id']}/logs", platform.root,
                            params={"level": "warning"}).json()["items"]
    reasons = " | ".join(line["message"] for line in logs)
    for reason in ("invalid JSON", "unknown format", "payload too large", "invalid log lines"):
        assert reason in reasons
    # Still consuming afterwards.
    publisher.publish(topic, {"ts": NOW - 2, "values": {"temperature": 6.0}})
    eventually(lambda: len(platform.readings(device["id"])) == 4)
    publisher.close()


def test_health_follows_the_broker_and_http_keeps_serving(platform: Platform, broker):
    device = platform.api.device(platform.root)
    health = platform.api.get("/health").json()
    assert (health["mqtt"], health["mqtt_auth"]) == ("connected", "open")
    broker.stop()
    eventually(lambda: platform.api.get("/health").json()["mqtt"] == "down")
    response = platform.api.post(f"/devices/{device['id']}/readings", platform.root,
                                 json={"temperature": 1.0})
    assert response.status_code == 202
    broker.start()
    eventually(lambda: platform.api.get("/health").json()["mqtt"] == "connected", timeout=40)
    publisher = Device(broker)
    publisher.publish(platform.topic(device["id"], "readings"), {"ts": NOW, "values": {"t": 2}})
    eventually(lambda: len(platform.readings(device["id"])) == 2)
    publisher.close()


def test_health_says_disabled_without_a_broker(api):
    health = api.get("/health").json()
    assert (health["mqtt"], health["mqtt_auth"]) == ("disabled", None)


def _stored(platform: Platform, device_id: int) -> list[tuple]:
    items = platform.readings(device_id, include_invalid=True)
    return sorted((r["key"], r["ts"], r["value"], r["valid"], tuple(r["tags"] or ()))
                  for r in items)


def test_the_same_body_stores_the_same_readings_by_http_and_by_mqtt(platform: Platform, broker):
    """Every rule of one entry point, by either path: field names never sensors, readings by
    sensor id, valid range, invalid tags, per-reading rejections."""
    by_http, by_mqtt = (platform.api.device(platform.root) for _ in range(2))
    for device in (by_http, by_mqtt):
        platform.api.post("/sensors", platform.root, json={
            "device_id": device["id"], "key": "t", "valid_max": 50})
    sensor_of = {device["id"]: platform.api.get("/sensors", platform.root, params={
        "device_id": device["id"]}).json()["items"][0]["id"] for device in (by_http, by_mqtt)}

    def bodies(device_id: int) -> list:
        sensor_id = sensor_of[device_id]
        return [
            {"ts": NOW - 50, "values": {"t": 20, "h": 40}},
            {"readings": [{"key": "t", "value": 99, "ts": NOW - 49},
                          {"key": "t", "value": 21, "ts": NOW - 48, "tags": ["suspect"]},
                          {"key": "t", "value": "hot", "ts": NOW - 47}]},
            {"sensor_id": sensor_id, "value": 22.5, "unit": "C", "status": "pending",
             "ts": NOW - 46},
            [{"sensor_id": sensor_id, "value": 70, "timestamp": NOW - 45},
             {"sensor_id": 999_999, "value": 1, "ts": NOW - 44}],
            {"co2": 415, "status": 1, "value": 3},
        ]

    for body in bodies(by_http["id"]):
        response = platform.api.post("/readings", device_key(by_http["api_key"]), json=body)
        assert response.status_code == 202, response.text
    publisher = Device(broker)
    for body in bodies(by_mqtt["id"]):
        publisher.publish(platform.topic(by_mqtt["id"], "readings"), body)
    platform.wait_handled(5)
    over_http, over_mqtt = _stored(platform, by_http["id"]), _stored(platform, by_mqtt["id"])
    untimed = lambda rows: [row for row in rows if row[0] != "co2"]  # noqa: E731
    assert untimed(over_http) == untimed(over_mqtt)
    assert [(k, v, ok) for k, _, v, ok, _ in over_http if k == "co2"] == [("co2", 415.0, True)]
    assert [(k, v, ok) for k, _, v, ok, _ in over_mqtt if k == "co2"] == [("co2", 415.0, True)]
    assert [(v, ok) for k, _, v, ok, _ in over_mqtt if k == "t"] == [
        (20.0, True), (99.0, False), (21.0, False), (22.5, True), (70.0, False)]
    keys = {s["key"] for s in platform.api.get("/sensors", platform.root, params={
        "device_id": by_mqtt["id"]}).json()["items"]}
    assert keys == {"t", "h", "co2"}
    # hot, the unknown sensor id, status and value: rejected alone, over MQTT too
    assert platform.metrics()["readings_rejected"] == 4
    publisher.close()


def test_a_message_nothing_of_which_can_be_stored_is_counted_rejected_and_acknowledged(
        platform: Platform, broker):
    device = platform.api.device(platform.root)
    publisher = Device(broker)
    topic = platform.topic(device["id"], "readings")
    publisher.publish(topic, {"value": 3, "unit": "C"})
    publisher.publish(topic, {"sensor_id": 999_999, "value": 1})
    publisher.publish(topic, {"ts": NOW - 1, "values": {"t": 1}})
    metrics = platform.wait_handled(3)
    assert metrics["rejected_by_reason"] == {"no reading of the body can be stored": 2}
    assert metrics["readings_rejected"] == 3
    assert [r["key"] for r in platform.readings(device["id"])] == ["t"]
    keys = {s["key"] for s in platform.api.get("/sensors", platform.root, params={
        "device_id": device["id"]}).json()["items"]}
    assert keys == {"t"}
    logs = platform.api.get(f"/devices/{device['id']}/logs", platform.root,
                            params={"level": "warning"}).json()["items"]
    assert any("no reading of the body can be stored" in line["message"] for line in logs)
    publisher.close()


def test_an_unknown_field_is_refused_naming_it_as_over_http(platform: Platform, broker):
    """Strict input over MQTT: the message is rejected, counted under "unknown field" and
    written to the device's log with the field's name; in a list, that item alone."""
    device = platform.api.device(platform.root)
    publisher = Device(broker)
    topic = platform.topic(device["id"], "readings")
    publisher.publish(topic, {"sensor_type": "t", "value": 1, "timestmap": NOW - 5})
    publisher.publish(topic, [{"sensor_type": "h", "value": 2, "ts": NOW - 5},
                              {"sensor_type": "p", "value": 3, "ts": NOW - 5, "units": "hPa"}])
    metrics = platform.wait_handled(2)
    assert metrics["rejected_by_reason"] == {"unknown field": 1}
    assert metrics["readings_rejected"] == 1  # the listed one; the whole message is counted apart
    assert [r["key"] for r in platform.readings(device["id"])] == ["h"]
    logs = platform.api.get(f"/devices/{device['id']}/logs", platform.root,
                            params={"level": "warning"}).json()["items"]
    assert any("unknown field 'timestmap'" in line["message"] for line in logs)
    publisher.close()
