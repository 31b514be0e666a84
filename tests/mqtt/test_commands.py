"""Commands to devices over MQTT: published when created, sent again to a device coming back
online, results reported back on the result topic."""

import json
import queue
import time

import pytest

from tests.mosquitto import Device
from tests.mqtt.conftest import Platform, eventually


def _command(platform: Platform, device_id: int, **body) -> dict:
    response = platform.api.post(f"/devices/{device_id}/commands", platform.root,
                                 json={"name": "reboot", **body})
    assert response.status_code == 201, response.text
    return response.json()


def _get(platform: Platform, device_id: int, command_id: int) -> dict:
    return platform.api.get(f"/devices/{device_id}/commands/{command_id}",
                            platform.root).json()


def test_a_command_reaches_a_connected_device_and_its_result_comes_back(platform: Platform,
                                                                         broker):
    device_id = platform.api.device(platform.root)["id"]
    device = Device(broker)
    device.subscribe(platform.topic(device_id, "commands"))
    command = _command(platform, device_id, params={"delay_seconds": 5})
    topic, payload = device.next_message()
    message = json.loads(payload)
    assert topic == platform.topic(device_id, "commands")
    assert (message["id"], message["name"], message["params"]) == (
        command["id"], "reboot", {"delay_seconds": 5})

    result_topic = platform.topic(device_id, f"commands/{command['id']}/result")
    device.publish(result_topic, {"status": "delivered"})
    eventually(lambda: _get(platform, device_id, command["id"])["status"] == "delivered")
    device.publish(result_topic, {"status": "succeeded", "result": {"uptime": 0}})
    done = eventually(lambda: (c := _get(platform, device_id, command["id"]))["status"]
                      == "succeeded" and c)
    assert done["result"] == {"uptime": 0}
    # A late report on a finished command is refused, counted and acknowledged.
    device.publish(result_topic, {"status": "failed"})
    eventually(lambda: platform.metrics()["rejected_messages"] == 1)
    assert _get(platform, device_id, command["id"])["status"] == "succeeded"
    device.close()


def test_a_device_that_was_offline_gets_its_queued_commands_when_it_comes_back(
        platform: Platform, broker):
    device_id = platform.api.device(platform.root)["id"]
    first = _command(platform, device_id, name="set-interval", params={"seconds": 60})
    second = _command(platform, device_id, name="calibrate")
    expired = _command(platform, device_id, name="too-late", ttl_seconds=1)
    cancelled = _command(platform, device_id, name="never-mind")
    platform.api.delete(f"/devices/{device_id}/commands/{cancelled['id']}", platform.root)
    time.sleep(1.2)

    # The device connects with a clean session (it kept nothing), subscribes, says hello.
    device = Device(broker)
    device.subscribe(platform.topic(device_id, "commands"))
    device.publish(platform.topic(device_id, "status"), "online")
    received = [json.loads(device.next_message()[1])["id"] for _ in range(2)]
    assert received == [first["id"], second["id"]]
    with pytest.raises(queue.Empty):
        device.next_message(timeout=1)
    assert expired["id"] not in received and cancelled["id"] not in received
    device.close()


def test_with_dynsec_the_device_gets_its_commands_and_reports_back(dynsec_platform: Platform,
                                                                    dynsec_broker):
    platform = dynsec_platform
    created = platform.api.device(platform.root)
    device_id = created["id"]
    device = eventually(lambda: (d := Device(dynsec_broker, username=str(device_id),
                                             password=created["api_key"])).connected and d)
    device.subscribe(platform.topic(device_id, "commands"))
    command = eventually(lambda: (c := _command(platform, device_id)) and _wait_message(device)
                         and c, timeout=15, interval=0.5)
    result_topic = platform.topic(device_id, f"commands/{command['id']}/result")
    device.publish(result_topic, {"status": "succeeded"})
    eventually(lambda: _get(platform, device_id, command["id"])["status"] == "succeeded")
    device.close()


def _wait_message(device: Device) -> bool:
    try:
        device.next_message(timeout=1)
        return True
    except queue.Empty:
        return False


def test_any_message_from_a_device_that_was_offline_brings_its_queued_commands(
        platform: Platform, broker):
    device_id = platform.api.device(platform.root)["id"]
    command = _command(platform, device_id, name="sync-clock")  # nobody listening yet
    device = Device(broker)
    device.subscribe(platform.topic(device_id, "commands"))
    device.publish(platform.topic(device_id, "readings"), {"temperature": 20})
    assert json.loads(device.next_message(timeout=5)[1])["id"] == command["id"]
    device.close()
