"""Messages spread over many devices, read together by the platform: each device's readings
go to its own sensors with its own rules, and a batch's bad messages are refused alone. And
when every database connection is taken, messages wait for one; none is dropped."""

import time

from sqlalchemy.exc import TimeoutError as PoolTimeout

from telemetra.mqtt.presence import Presence
from tests.mosquitto import Device
from tests.mqtt.conftest import Platform, eventually, start_platform

NOW = int(time.time())
DEVICES = 30


def publish_all(publisher: Device, messages: list[tuple[str, bytes]]) -> None:
    """Publish without waiting between messages, so the platform reads them together."""
    infos = [publisher.client.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(10)


def test_a_burst_over_many_devices_stores_each_with_its_own_sensor_rules(
        platform: Platform, broker):
    devices = [platform.api.device(platform.root) for _ in range(DEVICES)]
    # Each device's sensor "t" exists with a range of its own (valid up to 10 * its rank):
    # a reading of 10 * rank + 5 is invalid on its own device and valid on any later one.
    for rank, device in enumerate(devices, start=1):
        response = platform.api.post("/sensors", platform.root, json={
            "device_id": device["id"], "key": "t", "valid_max": 10 * rank})
        assert response.status_code == 201, response.text
    inactive = platform.api.device(platform.root)
    assert platform.api.patch(f"/devices/{inactive['id']}", platform.root,
                              json={"status": "inactive"}).status_code == 200
    messages = []
    for rank, device in enumerate(devices, start=1):
        topic = platform.topic(device["id"], "readings")
        messages.append((topic, b'{"ts": %d, "values": {"t": %d, "new_key": 1}}'
                         % (NOW - 60, 10 * rank + 5)))
        messages.append((topic, b'{"ts": %d, "values": {"t": %d}}' % (NOW - 50, 10 * rank)))
    messages.insert(7, (platform.topic(inactive["id"], "readings"), b'{"t": 1}'))
    messages.insert(20, (platform.topic(devices[3]["id"], "readings"), b'{"t": '))
    messages.insert(33, (platform.topic(999_999, "readings"), b'{"t": 1}'))
    publisher = Device(broker)
    publish_all(publisher, messages)
    metrics = platform.wait_handled(len(messages), timeout=30)
    publisher.close()

    assert metrics["readings_accepted"] == DEVICES * 3
    assert metrics["rejected_by_reason"] == {"invalid JSON": 1, "inactive device": 1,
                                             "unknown device": 1}, metrics
    for rank, device in enumerate(devices, start=1):
        stored = sorted((r["key"], r["value"], r["valid"]) for r in platform.readings(
            device["id"], include_invalid=True))
        assert stored == [("new_key", 1.0, True), ("t", 10.0 * rank, True),
                          ("t", 10.0 * rank + 5, False)], (rank, stored)
    assert platform.readings(inactive["id"], include_invalid=True) == []


def test_messages_wait_for_a_free_database_connection_and_none_is_dropped(
        database_url, broker):
    client = start_platform(database_url, broker)
    platform = Platform(client)
    try:
        device = platform.api.device(platform.root)
        engine = client.app.state.engine
        # The pool answers "no connection" after half a second instead of 30 s, so that the
        # test does not wait long for the moment a lookup gives up.
        engine.sync_engine.pool._timeout = 0.5
        held = []

        async def take_every_connection() -> None:
            while True:
                try:
                    held.append(await engine.connect())
                except PoolTimeout:
                    return

        async def give_them_back() -> None:
            for conn in held:
                await conn.close()

        counters = client.app.state.mqtt.consumer.counters
        client.portal.call(take_every_connection)
        publisher = Device(broker)
        publisher.publish(platform.topic(device["id"], "readings"),
                          {"ts": NOW - 30, "values": {"temperature": 21.5}})
        eventually(lambda: counters.retries >= 2, timeout=15)
        assert counters.handled == 0 and not counters.rejected, counters.as_dict()
        client.portal.call(give_them_back)

        metrics = platform.wait_handled(1, timeout=15)
        assert metrics["readings_accepted"] == 1 and metrics["rejected_messages"] == 0, metrics
        assert [r["value"] for r in platform.readings(device["id"])] == [21.5]
        publisher.close()
    finally:
        client.__exit__(None, None, None)


def test_presence_writes_each_device_at_most_so_often_and_last_seen_catches_up(
        platform: Platform):
    """A fleet's devices are each seen every few seconds: a mark written a moment ago waits
    (last_seen at most ``rewrite_seconds`` late), a device back online is written at once,
    and only devices with queued commands are looked up for them."""
    engine = platform.client.app.state.engine
    with_command, without = (platform.api.device(platform.root) for _ in range(2))
    response = platform.api.post(f"/devices/{with_command['id']}/commands", platform.root,
                                 json={"name": "reboot"})
    assert response.status_code == 201, response.text
    back: list[int] = []

    async def on_back_online(device_id: int) -> None:
        back.append(device_id)

    presence = Presence(engine, on_back_online, rewrite_seconds=5.0)  # room for a slow machine

    def flush(**options) -> None:
        platform.client.portal.call(lambda: presence.flush(**options))

    def last_seen(device: dict) -> str | None:
        return platform.api.get(f"/devices/{device['id']}/status",
                                platform.root).json()["last_seen"]

    presence.mark(with_command["id"])
    presence.mark(without["id"])
    flush()
    assert back == [with_command["id"]]  # both were back online; one has a command queued
    first = last_seen(without)
    assert first is not None and platform.api.get(
        f"/devices/{without['id']}/status", platform.root).json()["online"] is True

    time.sleep(0.05)
    presence.mark(without["id"])
    flush()
    assert last_seen(without) == first  # written a moment ago: the newer mark waits
    time.sleep(5.1)
    flush()
    assert last_seen(without) > first  # and is written once due

    platform.client.portal.call(lambda: presence.offline(without["id"]))
    assert platform.api.get(f"/devices/{without['id']}/status",
                            platform.root).json()["online"] is False
    presence.mark(without["id"])
    flush()  # back at once, though written a moment ago
    assert platform.api.get(f"/devices/{without['id']}/status",
                            platform.root).json()["online"] is True

    presence.mark(without["id"])
    flush(every_mark=True)  # stopping: nothing is kept back
    assert last_seen(without) > first and not presence._seen
