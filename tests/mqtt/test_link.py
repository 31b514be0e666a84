"""The link's own flow control, against a real Mosquitto: never more than
``receive_maximum`` messages taken in and not yet acknowledged, and a connection kept alive
(keep-alive answered, no reconnect) however long reading is held back."""

import asyncio
import logging
import subprocess
import time

from telemetra.mqtt.link import BrokerAddress, Link
from tests.mqtt.conftest import Platform, eventually, start_platform
from tests.mqtt.test_flow_control import readings_locked

T0 = 1767268800


def test_no_more_than_receive_maximum_unacknowledged_even_once_acks_flow(broker):
    async def run() -> list[int]:
        received = []
        link = Link(BrokerAddress.from_url(broker.url), client_id="link-test",
                    receive_maximum=10, session_expiry_seconds=60, on_messages=received.extend,
                    on_connected=lambda session_present: None, on_disconnected=lambda: None)
        link.subscribe(["$share/g/t/#"])
        link.start()
        while not link.connected:
            await asyncio.sleep(0.02)
        lines = b"".join(b"m%d\n" % n for n in range(100))
        await asyncio.to_thread(subprocess.run, ["mosquitto_pub", "-p", str(broker.port),
                                                 "-q", "1", "-l", "-t", "t/x"], input=lines,
                                check=True)
        await asyncio.sleep(0.5)
        counts = [len(received)]
        for message in received[:5]:
            link.ack(message)
        # Mosquitto 2.0 sends well past its Receive Maximum once acks arrive; the link stops
        # reading instead.
        await asyncio.sleep(0.5)
        counts.append(len(received))
        for message in received[5:]:
            link.ack(message)
        await asyncio.sleep(0.5)
        counts.append(len(received))
        await link.stop()
        return counts

    first, after_five_acks, after_all_acks = asyncio.run(run())
    assert first == 10
    assert after_five_acks <= 15
    assert after_all_acks > after_five_acks  # reading resumed


def test_keep_alive_holds_while_a_slow_consumer_holds_reading_back(broker):
    """A consumer that acknowledges nothing for several keep-alive periods (the database
    locked, say) while the broker has thousands of messages for it: the link stops reading,
    yet the connection stays up (no reconnect, no redelivery), and says so throughout."""

    async def run() -> tuple[int, list[bool], list, int]:
        received, connects, states = [], [], []
        link = Link(BrokerAddress.from_url(broker.url), client_id="link-keepalive",
                    receive_maximum=50, session_expiry_seconds=60, keepalive_seconds=2,
                    on_messages=received.extend, on_connected=connects.append,
                    on_disconnected=lambda: None)
        link.subscribe(["$share/g/t/#"])
        link.start()
        while not link.connected:
            await asyncio.sleep(0.02)
        lines = b"".join(b"m%05d\n" % n for n in range(3000))
        publisher = asyncio.create_task(asyncio.to_thread(
            subprocess.run, ["mosquitto_pub", "-p", str(broker.port), "-q", "1", "-l",
                             "-t", "t/x"], input=lines, check=True))
        for _ in range(80):  # 8 s, four keep-alive periods, nothing acknowledged
            states.append(link.connected)
            await asyncio.sleep(0.1)
        acked = 0
        for _ in range(600):  # then a slow consumer: what it holds, a batch at a time
            states.append(link.connected)
            for message in received[acked:]:
                link.ack(message)
            acked = len(received)
            if acked >= 3000 and publisher.done():
                break
            await asyncio.sleep(0.05)
        await publisher
        await link.stop()
        return len(connects), states, received, acked

    connects, states, received, acked = asyncio.run(run())
    assert connects == 1  # never reconnected
    assert all(states), f"down {states.count(False)} times of {len(states)}"
    payloads = [message.payload for message in received]
    assert len(payloads) == len(set(payloads)) == 3000  # no redelivery


def test_the_platform_stays_connected_and_says_so_while_storage_is_stalled(
        database_url, broker, caplog):
    """A flood of messages while the database holds the writer back for several keep-alive
    periods: no reconnect, /health says mqtt connected throughout, every message stored
    once."""
    caplog.set_level(logging.INFO, logger="telemetra.mqtt")
    client = start_platform(database_url, broker, mqtt_keepalive_seconds=2,
                            mqtt_receive_maximum=20)
    try:
        platform = Platform(client)
        device_id = platform.api.device(platform.root)["id"]
        count = 2000
        lines = b"".join(b'{"ts":%d,"values":{"temperature":%d}}\n' % (T0 + n, n)
                         for n in range(count))
        health = []
        with readings_locked(database_url):
            publisher = subprocess.Popen(
                ["mosquitto_pub", "-p", str(broker.port), "-q", "1", "-l",
                 "-t", platform.topic(device_id, "readings")], stdin=subprocess.PIPE)
            publisher.stdin.write(lines)
            publisher.stdin.close()
            deadline = time.monotonic() + 7  # three and a half keep-alive periods
            while time.monotonic() < deadline:
                health.append(client.get("/health").json()["mqtt"])
                time.sleep(0.1)
        stored = eventually(lambda: (n := len(platform.readings(device_id))) == count and n,
                            timeout=60)
        assert publisher.wait(30) == 0
        for _ in range(20):
            health.append(client.get("/health").json()["mqtt"])
            time.sleep(0.05)
        metrics = platform.metrics()
    finally:
        client.__exit__(None, None, None)
    assert stored == count
    assert set(health) == {"connected"}, health
    connects = [r for r in caplog.records if r.getMessage().startswith("MQTT connected")]
    assert len(connects) == 1, [r.getMessage() for r in caplog.records]
    assert metrics["received"] == count  # nothing redelivered
