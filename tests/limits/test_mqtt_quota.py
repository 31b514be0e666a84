"""Over MQTT the daily readings quota refuses a message whole: acknowledged, counted rejected
with the reason, written to the device's log, and counted for the device in usage."""

import pytest

from tests.mosquitto import Device
from tests.mqtt.conftest import Platform, broker, eventually, start_platform  # noqa: F401


@pytest.fixture
def platform(database_url, broker):  # noqa: F811
    client = start_platform(database_url, broker, plans={"small": {"readings_per_day": 3}},
                            usage_flush_seconds=0.2)
    yield Platform(client)
    client.__exit__(None, None, None)


def test_a_message_over_the_quota_is_counted_rejected(platform: Platform, broker):  # noqa: F811
    api, root = platform.api, platform.root
    org = api.get("/organizations/me", root).json()
    assert api.put(f"/admin/organizations/{org['id']}/plan", root,
                   json={"plan": "small"}).status_code == 200
    device = api.device(root)
    publisher = Device(broker)
    topic = platform.topic(device["id"], "readings")
    publisher.publish(topic, {"a": 1, "b": 2})
    platform.wait_handled(1)
    publisher.publish(topic, {"c": 1, "d": 2})  # 4 of 3: refused whole
    publisher.publish(topic, {"e": 1})  # 3 of 3
    metrics = platform.wait_handled(3)
    reasons = metrics["rejected_by_reason"]
    assert reasons == {"over the daily readings quota": 1}
    assert sorted(r["key"] for r in platform.readings(device["id"])) == ["a", "b", "e"]
    logs = api.get(f"/devices/{device['id']}/logs", root, params={"level": "warning"}).json()
    assert any("daily readings quota" in line["message"] for line in logs["items"])
    usage = api.get("/organizations/me/usage", root).json()
    assert usage["readings_today"] == 3
    assert usage["rejected_today"]["by_device"] == [
        {"device_id": device["id"], "rate_limited": 0, "quota_exceeded": 1}]
    publisher.close()
