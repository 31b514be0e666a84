"""MQTT ingestion benchmark: Telemetra storing QoS 1 messages durably in PostgreSQL against a
bare subscriber that only counts, same publishers, same broker, one run.

    .venv/bin/python bench/mqtt.py          (or: make bench)
    BENCH_MQTT_MESSAGES=200000 BENCH_PUBLISHERS=4 BENCH_WORKERS=1

N publisher processes (mosquitto_pub) send BENCH_MQTT_MESSAGES QoS 1 messages of 3 readings
each to a fresh Mosquitto, as fast as it acknowledges them. The figure is messages delivered per
second, from the first publish to the last message stored (Telemetra: committed to
PostgreSQL, then acknowledged) or counted (baseline: a paho-mqtt subscriber with automatic
acknowledgements). Both count lost messages, which must be zero.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import pgcluster  # noqa: E402
from tests.mosquitto import Broker  # noqa: E402
from tests.server import API, Server  # noqa: E402

MESSAGES = int(os.environ.get("BENCH_MQTT_MESSAGES", "200000"))
PUBLISHERS = int(os.environ.get("BENCH_PUBLISHERS", "4"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "1"))
T0_MS = 1_800_000_000_000
PER_PUBLISHER = 10_000_000  # timestamp space of one publisher (ms)
SHARE = "$share/bench/"


def count_subscriber(port: int, expected_file: Path, result_file: Path) -> None:
    """The baseline: a bare paho subscriber (shared subscription, QoS 1) that only counts."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    state = {"count": 0, "last": None}

    def on_message(client, userdata, message):
        state["count"] += 1
        state["last"] = time.time()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-counter",
                         protocol=MQTTProtocolVersion.MQTTv5)
    client.on_message = on_message
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    client.connect("127.0.0.1", port, clean_start=False, properties=properties)
    client.subscribe(SHARE + "telemetra/devices/+/readings", qos=1)
    client.loop_start()
    time.sleep(0.5)
    result_file.with_suffix(".ready").touch()
    while not expected_file.exists() or state["count"] < int(expected_file.read_text()):
        time.sleep(0.05)
        if expected_file.exists() and state["last"] and time.time() - state["last"] > 30:
            break
    client.disconnect()
    client.loop_stop()
    result_file.write_text(json.dumps(state))


def payloads(index: int, count: int) -> bytes:
    """One publisher's messages, a line each: 3 readings with a timestamp of their own."""
    base = T0_MS + index * PER_PUBLISHER
    return b"".join(
        b'{"ts":%d,"values":{"temperature":%d.5,"humidity":%d,"pressure":1013.%d}}\n'
        % (base + n, n % 40, n % 100, n % 10) for n in range(count))


def run_publishers(port: int, device_id: int) -> tuple[int, float]:
    """mosquitto_pub -l (one message a line, QoS 1, up to 1,000 awaiting PUBACK): C
    publishers, so the figure measures the receiving side, not a Python publisher."""
    per = MESSAGES // PUBLISHERS
    inputs = [payloads(index, per) for index in range(PUBLISHERS)]
    started = time.time()
    processes = [subprocess.Popen(["mosquitto_pub", "-p", str(port), "-q", "1", "-l",
                                   "-M", "1000", "-V", "mqttv5", "-i", f"bench-pub-{index}",
                                   "-t", f"telemetra/devices/{device_id}/readings"],
                                  stdin=subprocess.PIPE)
                 for index in range(PUBLISHERS)]
    for process, data in zip(processes, inputs, strict=True):
        process.stdin.write(data)
        process.stdin.close()
    for process in processes:
        if process.wait(timeout=600) != 0:
            raise RuntimeError("mosquitto_pub failed")
    return per * PUBLISHERS, started


def baseline(workdir: Path) -> dict:
    broker = Broker(workdir / "broker-baseline")
    broker.start()
    expected, result = workdir / "expected", workdir / "result"
    counter = subprocess.Popen([sys.executable, __file__, "count", str(broker.port),
                                str(expected), str(result)])
    while not result.with_suffix(".ready").exists():
        time.sleep(0.05)
    try:
        sent, started = run_publishers(broker.port, 1)
        expected.write_text(str(sent))
        counter.wait(timeout=600)
        state = json.loads(result.read_text())
    finally:
        broker.stop()
    return {"sent": sent, "received": state["count"],
            "per_s": state["count"] / (state["last"] - started)}


def stored_readings(server: Server, headers: dict) -> int:
    return httpx.get(server.base + API + "/organizations/me/usage", headers=headers,
                     timeout=120).json()["readings_total"]


def telemetra(database_url: str, workdir: Path) -> dict:
    broker = Broker(workdir / "broker-telemetra")
    broker.start()
    server = Server(database_url, workdir / "server.log", workers=WORKERS,
                    mqtt_url=broker.url, mqtt_auth="open", mqtt_client_id="bench",
                    max_future_seconds=str(10**10))  # T0_MS is in 2027
    server.start()
    try:
        headers = server.login()
        deadline = time.monotonic() + 30
        while httpx.get(server.base + "/health").json()["mqtt"] != "connected":
            if time.monotonic() > deadline:
                raise RuntimeError("Telemetra did not connect to the broker")
            time.sleep(0.1)
        device = httpx.post(server.base + API + "/devices", headers=headers,
                            json={"name": "mqtt-bench"}).json()
        sent, started = run_publishers(broker.port, device["id"])
        last, last_change, finished = -1, time.time(), None
        while True:
            stored = stored_readings(server, headers)
            now = time.time()
            if stored >= sent * 3:
                finished = now
                break
            if stored != last:
                last, last_change = stored, now
            elif now - last_change > 30:
                break
            time.sleep(0.2)
        stored = stored_readings(server, headers)
    finally:
        server.stop()
        broker.stop()
    messages = stored // 3
    return {"sent": sent, "received": messages,
            "per_s": messages / ((finished or time.time()) - started)}


def main() -> None:
    print(f"{MESSAGES:,} messages, {PUBLISHERS} publisher processes, QoS 1, "
          f"3 readings a message, {os.cpu_count()} cores, telemetra serve --workers {WORKERS}")
    workdir = Path(tempfile.mkdtemp(prefix="telemetra-bench-mqtt-"))
    try:
        bare = baseline(workdir)
        with pgcluster.throwaway_cluster(durable=True, shared_buffers="128MB") as cluster:
            url = pgcluster.create_database(cluster.url, "bench")
            ours = telemetra(url, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n== MQTT, PostgreSQL (fsync on) ==")
    print(f"Telemetra: {ours['per_s']:,.0f} messages/s ({ours['per_s'] * 3:,.0f} readings/s), "
          f"sent {ours['sent']:,}, stored {ours['received']:,}, "
          f"lost {ours['sent'] - ours['received']:,}")
    print(f"  baseline bare paho subscriber: {bare['per_s']:,.0f} messages/s, sent "
          f"{bare['sent']:,}, counted {bare['received']:,}, lost "
          f"{bare['sent'] - bare['received']:,}")
    print(f"  ratio: {ours['per_s'] / bare['per_s']:.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "count":
        count_subscriber(int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        main()
