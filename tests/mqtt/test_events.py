"""What an MQTT message or a site's deletion changes reaches every cache and the broker at
once: the two cases issue 10 found (a heartbeat setting a device inactive left its cached key
working over HTTP; deleting a site left its devices' broker logins and the ingestion path's
cached devices behind)."""

import time

from tests.helpers import device_key, unique
from tests.mosquitto import Device, refused_login
from tests.mqtt.conftest import Platform, eventually

NOW = int(time.time())


def post_reading(platform: Platform, device: dict):
    return platform.api.post("/readings", device_key(device["api_key"]),
                             json={"temperature": 21.5})


def test_an_mqtt_heartbeat_setting_inactive_refuses_the_cached_key_at_once(
        platform: Platform, broker):
    device = platform.api.device(platform.root)
    assert post_reading(platform, device).status_code == 202  # the key is cached now
    client = Device(broker)
    client.publish(platform.topic(device["id"], "heartbeat"), {"status": "inactive"})
    platform.wait_handled(1)
    refused = post_reading(platform, device)
    assert refused.status_code == 403 and "inactive" in refused.json()["detail"]
    # The MQTT side refuses it too, and stores nothing.
    client.publish(platform.topic(device["id"], "readings"), {"ts": NOW, "values": {"t": 1}})
    metrics = platform.wait_handled(2)
    assert metrics["rejected_by_reason"].get("inactive device") == 1
    assert len(platform.readings(device["id"])) == 1
    client.close()


def test_deleting_a_site_stops_the_ingestion_of_its_devices_over_mqtt(
        platform: Platform, broker):
    site = platform.api.post("/sites", platform.root, json={"name": unique("site")}).json()
    device = platform.api.device(platform.root, site_id=site["id"])
    kept = platform.api.device(platform.root)
    client = Device(broker)
    for each in (device, kept):
        client.publish(platform.topic(each["id"], "readings"), {"ts": NOW, "values": {"t": 1}})
    platform.wait_handled(2)
    assert len(platform.readings(device["id"])) == 1  # the device and its sensor are cached
    assert platform.api.delete(f"/sites/{site['id']}", platform.root).status_code == 204
    for each in (device, kept):
        client.publish(platform.topic(each["id"], "readings"),
                       {"ts": NOW + 1, "values": {"t": 2}})
    metrics = platform.wait_handled(4)
    assert metrics["rejected_by_reason"].get("unknown device") == 1
    assert metrics["rejected_by_device"].get(str(device["id"])) == 1
    assert len(platform.readings(kept["id"])) == 2
    client.close()


def test_deleting_a_site_removes_its_devices_broker_logins(
        dynsec_platform: Platform, dynsec_broker):
    platform = dynsec_platform
    site = platform.api.post("/sites", platform.root, json={"name": unique("site")}).json()
    gone = [platform.api.device(platform.root, site_id=site["id"]) for _ in range(2)]
    kept = platform.api.device(platform.root)
    logins = [(str(d["id"]), d["api_key"]) for d in [*gone, kept]]
    eventually(lambda: not any(refused_login(dynsec_broker, *login) for login in logins))
    assert platform.api.delete(f"/sites/{site['id']}", platform.root).status_code == 204
    eventually(lambda: all(refused_login(dynsec_broker, *login) for login in logins[:2]))
    assert not refused_login(dynsec_broker, *logins[2])
