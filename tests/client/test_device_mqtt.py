"""``DeviceClient`` over MQTT: a real Mosquitto with dynamic security (the device logs in with
its id and key, as the platform provisions it) and a real ``telemetra serve`` connected to it."""

import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from telemetra.client import Backoff, DeviceClient, UserClient
from tests.client.conftest import eventually
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME
from tests.mosquitto import Broker
from tests.server import Server

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def broker(backend, tmp_path_factory):
    # One per backend: a platform's persistent shared subscription outlives it on its broker,
    # and would take its share of the next platform's messages.
    broker = Broker(tmp_path_factory.mktemp("broker"), dynsec=True)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def server(databases, broker, tmp_path_factory):
    server = Server(databases.new(), tmp_path_factory.mktemp("server") / "server.log",
                    mqtt_url=broker.url, mqtt_auth="dynsec",
                    mqtt_client_id=f"sdk-{uuid.uuid4().hex[:6]}")
    server.start()
    eventually(lambda: httpx.get(server.base + "/health").json()["mqtt"] == "connected")
    yield server
    server.stop()


@pytest.fixture
def admin(server):
    with UserClient(server.base) as client:
        client.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        yield client


@pytest.fixture
def mqtt_device(admin, broker):
    created = admin.create_device(f"mqtt-{uuid.uuid4().hex[:6]}")
    # The broker login is provisioned just after the device is stored: connect when it is.
    client = DeviceClient.over_mqtt(f"mqtt://127.0.0.1:{broker.port}", created.id,
                                    created.api_key, timeout=5,
                                    backoff=Backoff(attempts=None, base=0.1, cap=0.5))
    assert client.link.wait_connected(15)
    yield created, client
    client.close()


def test_readings_sent_over_mqtt_are_stored_with_their_times(admin, mqtt_device):
    created, client = mqtt_device
    for n in range(300):
        client.record({"temperature": n}, ts=T0 + timedelta(seconds=n))
    client.batch_size = 100
    result = client.flush()
    assert (result.sent, result.accepted) == (300, None)  # the broker has them
    stored = eventually(lambda: len(found := list(admin.readings(device_id=created.id))) == 300
                        and found)
    assert [r.ts for r in stored] == [T0 + timedelta(seconds=n) for n in range(300)]


def test_a_heartbeat_over_mqtt_marks_the_device_seen(admin, mqtt_device):
    created, client = mqtt_device
    assert client.heartbeat(firmware_version="2.0.0") is None
    device = eventually(lambda: (d := admin.request("GET", f"/devices/{created.id}").json())
                        ["firmware_version"] == "2.0.0" and d)
    assert device["last_seen"] is not None


def test_a_command_pushed_over_mqtt_is_received_and_answered(admin, mqtt_device):
    created, client = mqtt_device
    time.sleep(0.3)  # the subscription is in place once connected; be generous
    sent = admin.send_command(created.id, "set_interval", {"seconds": 5})
    [command] = client.commands(timeout=10)
    assert (command.id, command.name, command.params) == (sent.id, "set_interval",
                                                          {"seconds": 5})
    eventually(lambda: admin.command(created.id, sent.id).status == "delivered")
    client.report(command, "succeeded", {"interval": 5})
    done = eventually(lambda: (c := admin.command(created.id, sent.id)).status == "succeeded"
                      and c)
    assert done.result == {"interval": 5}
    assert client.commands() == []


def test_commands_queued_while_the_device_was_away_arrive_when_it_connects(admin, broker):
    created = admin.create_device(f"mqtt-{uuid.uuid4().hex[:6]}")
    sent = admin.send_command(created.id, "reboot")
    time.sleep(0.5)  # its broker login is provisioned meanwhile
    client = DeviceClient.over_mqtt(f"mqtt://127.0.0.1:{broker.port}", created.id,
                                    created.api_key)
    try:
        handled = client.handle_commands(lambda command: {"rebooted": True}, timeout=10)
        assert [c.id for c in handled] == [sent.id]
        eventually(lambda: admin.command(created.id, sent.id).status == "succeeded")
    finally:
        client.close()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_simulate_over_mqtt_sends_and_honours_set_interval(server, admin, broker):
    run = subprocess.Popen(
        [sys.executable, "-m", "telemetra", "simulate", "--url", server.base,
         "--username", ADMIN_USERNAME, "--password", ADMIN_PASSWORD, "--devices", "1",
         "--transport", "mqtt", "--mqtt-url", f"mqtt://127.0.0.1:{broker.port}",
         "--interval", "0.5", "--prefix", "simmqtt", "--duration", "8"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        [device] = eventually(lambda: admin.devices(q="simmqtt"), timeout=20)
        eventually(lambda: len(list(admin.readings(device_id=device["id"]))) >= 8, timeout=10)
        sent = admin.send_command(device["id"], "set_interval", {"seconds": 0.1})
        done = eventually(lambda: (c := admin.command(device["id"], sent.id)).status
                          == "succeeded" and c, timeout=10)
        assert done.result == {"interval": 0.1, "previous": 0.5}
        output, _ = run.communicate(timeout=30)
    finally:
        run.kill()
    assert run.returncode == 0, output
    after = [r for r in admin.readings(device_id=device["id"], keys=["light"])
             if r.ts > done.completed_at]
    assert len(after) >= 10


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_readings_taken_while_the_broker_was_down_keep_their_times(server, admin, broker,
                                                                    mqtt_device):
    created, client = mqtt_device
    client.record({"rssi": -60})
    broker.stop()
    eventually(lambda: not client.link._connected.is_set())
    client.record({"rssi": -61})  # taken during the outage
    taken = [m.ts for m in list(client._buffer)]
    results = []
    flusher = threading.Thread(target=lambda: results.append(client.flush()))
    flusher.start()
    time.sleep(1.0)
    assert flusher.is_alive() and client.pending == 2
    restarted_at = datetime.now(UTC)
    broker.start()
    flusher.join(60)
    assert results and results[0].sent == 2
    stored = eventually(lambda: len(found := list(admin.readings(device_id=created.id))) == 2
                        and found, timeout=30)
    assert [r.ts for r in stored] == taken
    assert all(ts < restarted_at for ts in taken)
