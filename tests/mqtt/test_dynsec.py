"""Device identity at the broker (Mosquitto's dynamic security plugin): each device logs in
as itself with its key and may only use its own topics; key rotation, deactivation and
deletion take effect at the broker at once."""

import time

from tests.mosquitto import Device, refused_login
from tests.mqtt.conftest import Platform, eventually

NOW = int(time.time())


def _login(broker, device: dict) -> Device:
    return Device(broker, username=str(device["id"]), password=device["api_key"])


def _can_log_in(broker, device: dict, key: str | None = None) -> bool:
    return not refused_login(broker, str(device["id"]), key or device["api_key"])


def test_a_device_logs_in_with_its_key_and_publishes_only_under_its_own_topics(
        dynsec_platform: Platform, dynsec_broker):
    platform = dynsec_platform
    health = platform.api.get("/health").json()
    assert health["mqtt_auth"] == "dynsec"
    mine = platform.api.device(platform.root)
    other = platform.api.device(platform.root)
    eventually(lambda: _can_log_in(dynsec_broker, mine) and _can_log_in(dynsec_broker, other))
    assert refused_login(dynsec_broker, str(mine["id"]), other["api_key"])
    assert refused_login(dynsec_broker, "anonymous-guess", "tdk_nothing")

    device = _login(dynsec_broker, mine)
    accepted = device.publish(platform.topic(mine["id"], "readings"),
                              {"ts": NOW, "values": {"temperature": 20.5}})
    assert accepted.rc == 0
    eventually(lambda: len(platform.readings(mine["id"])) == 1)

    # MQTT 5: the broker answers "not authorized" (0x87) and stores nothing for the other.
    codes = []
    device.client.on_publish = lambda client, userdata, mid, code, properties: codes.append(code)
    device.publish(platform.topic(other["id"], "readings"), {"ts": NOW, "values": {"t": 99}})
    eventually(lambda: codes)
    assert codes[0].value == 0x87
    time.sleep(0.5)
    assert platform.readings(other["id"]) == []
    device.close()


def test_rotating_the_key_stops_the_old_one_at_once(dynsec_platform: Platform, dynsec_broker):
    platform = dynsec_platform
    device = platform.api.device(platform.root)
    eventually(lambda: _can_log_in(dynsec_broker, device))
    connected = _login(dynsec_broker, device)
    assert connected.connected
    rotated = platform.api.post(f"/devices/{device['id']}/rotate-key", platform.root).json()
    eventually(lambda: _can_log_in(dynsec_broker, device, rotated["api_key"]))
    assert refused_login(dynsec_broker, str(device["id"]), device["api_key"])
    eventually(lambda: not connected.connected)  # the old session was ended too
    connected.close()


def test_deactivating_and_deleting_a_device_take_effect_at_the_broker(
        dynsec_platform: Platform, dynsec_broker):
    platform = dynsec_platform
    device = platform.api.device(platform.root)
    path = f"/devices/{device['id']}"
    eventually(lambda: _can_log_in(dynsec_broker, device))
    assert platform.api.patch(path, platform.root, json={"status": "inactive"}).status_code == 200
    eventually(lambda: not _can_log_in(dynsec_broker, device))
    assert platform.api.patch(path, platform.root, json={"status": "active"}).status_code == 200
    eventually(lambda: _can_log_in(dynsec_broker, device))
    assert platform.api.delete(path, platform.root).status_code == 204
    eventually(lambda: not _can_log_in(dynsec_broker, device))


def test_a_device_created_inactive_cannot_log_in(dynsec_platform: Platform, dynsec_broker):
    platform = dynsec_platform
    device = platform.api.device(platform.root, status="inactive")
    active = platform.api.device(platform.root)
    eventually(lambda: _can_log_in(dynsec_broker, active))  # operations are applied in order
    assert not _can_log_in(dynsec_broker, device)
