"""While storage cannot keep up, the platform stops taking messages (the broker holds them)
instead of buffering without bound, and stores every one once storage is back."""

import asyncio
import threading
import time
from contextlib import contextmanager

import pytest

from telemetra.db.engine import create_engine
from tests.helpers import lock_readings
from tests.mosquitto import Device
from tests.mqtt.conftest import Platform, eventually, start_platform

RECEIVE_MAXIMUM = 20
T0 = 1767268800


@contextmanager
def readings_locked(database_url: str):
    """Another connection holds the readings table's write lock until the block ends."""
    locked, release, failed = threading.Event(), threading.Event(), []

    async def hold() -> None:
        engine = create_engine(database_url)
        conn = await engine.connect()
        try:
            conn = await lock_readings(conn)
            locked.set()
            while not release.is_set():
                await asyncio.sleep(0.05)
            await conn.rollback()
        except Exception as exc:  # surfaced to the test below
            failed.append(exc)
            locked.set()
        finally:
            await conn.close()
            await engine.dispose()

    thread = threading.Thread(target=asyncio.run, args=(hold(),))
    thread.start()
    locked.wait(10)
    assert not failed, failed
    try:
        yield
    finally:
        release.set()
        thread.join(10)


@pytest.fixture
def slow_platform(database_url, broker):
    client = start_platform(database_url, broker, mqtt_receive_maximum=RECEIVE_MAXIMUM)
    yield Platform(client), database_url
    client.__exit__(None, None, None)


def test_a_stalled_writer_stops_the_intake_and_nothing_is_lost(slow_platform, broker):
    platform, database_url = slow_platform
    device_id = platform.api.device(platform.root)["id"]
    publisher = Device(broker)
    topic = platform.topic(device_id, "readings")
    # Messages flowing first: once acknowledgements flow, Mosquitto 2.0 no longer holds the
    # Receive Maximum it was given, so the bound must be the platform's own.
    warm = 100
    for n in range(warm):
        publisher.publish(topic, {"ts": T0 + n, "values": {"temperature": n}})
    eventually(lambda: len(platform.readings(device_id)) == warm)
    count = 300
    with readings_locked(database_url):
        before = platform.metrics()["received"]
        for n in range(warm, warm + count):
            publisher.publish(topic, {"ts": T0 + n, "values": {"temperature": n}})
        time.sleep(1.5)
        metrics = platform.metrics()
        # At most RECEIVE_MAXIMUM messages taken in (and unacknowledged); the rest wait at
        # the broker.
        assert metrics["received"] - before <= RECEIVE_MAXIMUM, metrics
        assert metrics["in_flight"] <= RECEIVE_MAXIMUM
    eventually(lambda: len(platform.readings(device_id)) == warm + count, timeout=30)
    assert platform.metrics()["rejected_messages"] == 0
    publisher.close()
