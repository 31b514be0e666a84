"""``mqtt_topic`` connectors: a plain topic mapped onto a device; the subscriptions follow
connector changes without a restart."""

import struct
import time

from tests.mosquitto import Device
from tests.mqtt.conftest import Platform, eventually


def _connector(platform: Platform, device_id: int, **body) -> dict:
    response = platform.api.post("/connectors", platform.root, json={
        "name": f"plain-{time.monotonic_ns()}", "kind": "mqtt_topic", "device_id": device_id,
        **body})
    assert response.status_code == 201, response.text
    return response.json()


def test_a_plain_topic_feeds_its_device_and_follows_connector_changes(platform: Platform,
                                                                      broker):
    device_id = platform.api.device(platform.root)["id"]
    connector = _connector(platform, device_id, topic="sensor/data")
    publisher = Device(broker)
    reading = {"sensor_type": "temperature", "value": 22.5, "unit": "°C"}
    eventually(lambda: publisher.publish("sensor/data", reading) and
               len(platform.readings(device_id)) >= 1, timeout=10, interval=0.3)
    stored = platform.readings(device_id)[0]
    assert (stored["key"], stored["value"], stored["unit"]) == ("temperature", 22.5, "°C")

    # Moved to another topic: the old one is no longer consumed, the new one is.
    path = f"/connectors/{connector['id']}"
    assert platform.api.patch(path, platform.root,
                              json={"topic": "site/+/data"}).status_code == 200
    eventually(lambda: publisher.publish("site/7/data", {**reading, "value": 23.0}) and
               any(r["value"] == 23.0 for r in platform.readings(device_id)), interval=0.3)
    publisher.publish("sensor/data", {**reading, "value": 99.0})
    time.sleep(0.5)
    assert all(r["value"] != 99.0 for r in platform.readings(device_id))

    assert platform.api.delete(path, platform.root).status_code == 204
    time.sleep(0.5)
    publisher.publish("site/7/data", {**reading, "value": 98.0})
    time.sleep(0.5)
    assert all(r["value"] != 98.0 for r in platform.readings(device_id))
    publisher.close()


def test_a_connector_decodes_raw_float32_bytes_under_its_key(platform: Platform, broker):
    device_id = platform.api.device(platform.root)["id"]
    _connector(platform, device_id, topic="gateway/raw", format="bytes", key="pressure",
               byte_order="big")
    publisher = Device(broker)
    raw = list(struct.pack(">f", 1013.25))
    eventually(lambda: publisher.publish("gateway/raw", {"time": int(time.time()),
                                                         "value": raw}) and
               platform.readings(device_id), interval=0.3)
    stored = platform.readings(device_id)[0]
    assert (stored["key"], stored["value"]) == ("pressure", 1013.25)
    publisher.close()


def test_readings_older_than_the_connectors_max_age_are_tagged_too_old(platform: Platform,
                                                                       broker):
    device_id = platform.api.device(platform.root)["id"]
    _connector(platform, device_id, topic="farm/old", format="readings", max_age_seconds=600)
    publisher = Device(broker)
    now = int(time.time())
    body = {"readings": [{"key": "soil", "value": 1, "ts": now - 3600},
                         {"key": "soil", "value": 2, "ts": now - 10}]}
    eventually(lambda: publisher.publish("farm/old", body) and
               len(platform.readings(device_id, include_invalid=True)) == 2, interval=0.3)
    stored = {r["value"]: (r["valid"], r["tags"]) for r in
              platform.readings(device_id, include_invalid=True)}
    assert stored[1.0] == (False, ["too old"])  # "too old" is an invalid tag by default
    assert stored[2.0][0] is True and not stored[2.0][1]
    # The same body on the device's own topic (no max age) is not tagged.
    other = platform.api.device(platform.root)["id"]
    publisher.publish(platform.topic(other, "readings"), body)
    eventually(lambda: len(platform.readings(other, include_invalid=True)) == 2)
    assert all(r["valid"] for r in platform.readings(other, include_invalid=True))
    publisher.close()
