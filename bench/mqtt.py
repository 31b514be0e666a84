"""MQTT ingestion benchmark: Telemetra storing QoS 1 messages durably in PostgreSQL against a
bare subscriber that only counts, same publishers, same broker, one run.

    .venv/bin/python bench/mqtt.py          (or: make bench)
    BENCH_MQTT_MESSAGES=200000 BENCH_PUBLISHERS=4 BENCH_WORKERS=1

N publisher processes (mosquitto_pub) send BENCH_MQTT_MESSAGES QoS 1 messages of 3 readings
each to a fresh Mosquitto, as fast as it acknowledges them. The figure is messages delivered per
second, from the first publish to the last message stored (Telemetra: committed to
PostgreSQL, then acknowledged) or counted (baseline: a paho-mqtt subscriber with automatic
acknowledgements). Both count lost messages, which must be zero.

Then the fleet phase (BENCH_PHASES=bare,fleet picks phases): BENCH_FLEET_MESSAGES (50,000)
messages from a Python paho publisher (BENCH_PUBLISHERS processes, QoS 1), once all to one
device's topic and twice each to a random one of BENCH_FLEET_DEVICES (5,000) devices, after a
warm-up message from every device (its sensors created then). Printed: messages/s of each,
the ratio, and the resident memory of the server's processes at the start and the end of each
run: the second fleet run, every device and sensor seen before, must add none.
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

from bench.fleet import create_devices, tree_rss_mb  # noqa: E402
from tests import pgcluster  # noqa: E402
from tests.mosquitto import Broker  # noqa: E402
from tests.server import API, Server  # noqa: E402

MESSAGES = int(os.environ.get("BENCH_MQTT_MESSAGES", "200000"))
PUBLISHERS = int(os.environ.get("BENCH_PUBLISHERS", "4"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "1"))
PHASES = os.environ.get("BENCH_PHASES", "bare,fleet").split(",")
FLEET_MESSAGES = int(os.environ.get("BENCH_FLEET_MESSAGES", "50000"))
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


def py_publisher(port: int, topics_file: Path, count: int, index: int, run: int) -> None:
    """One publisher process: ``count`` QoS 1 messages of 3 readings, each to a random topic
    of ``topics_file`` (one a line), up to 1,000 awaiting PUBACK."""
    import random

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    topics = topics_file.read_text().split()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-fleet-pub-{index}",
                         protocol=MQTTProtocolVersion.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    base = T0_MS + ((run + 1) * 100 + index) * PER_PUBLISHER  # a time range of its own
    infos = []
    for n in range(count):
        body = (b'{"ts":%d,"values":{"temperature":%d.5,"humidity":%d,"pressure":1013.%d}}'
                % (base + n, n % 40, n % 100, n % 10))
        infos.append(client.publish(random.choice(topics), body, qos=1))
    for info in infos:
        info.wait_for_publish(600)
    client.disconnect()
    client.loop_stop()


def publish_spread(port: int, topics: list[str], workdir: Path, count: int, run: int) -> float:
    """``count`` messages from BENCH_PUBLISHERS publisher processes; returns the start.
    ``run``: which call this is (each has timestamps of its own)."""
    topics_file = workdir / "fleet-topics.txt"
    topics_file.write_text("\n".join(topics))
    per = count // PUBLISHERS
    started = time.time()
    processes = [subprocess.Popen([sys.executable, __file__, "publish", str(port),
                                   str(topics_file), str(per), str(index), str(run)])
                 for index in range(PUBLISHERS)]
    for process in processes:
        if process.wait(timeout=900) != 0:
            raise RuntimeError("publisher failed")
    return started


def wait_stored(server: Server, headers: dict, target: int,
                patience: float = 30) -> tuple[int, float | None]:
    """Until ``target`` readings are stored, or none more for ``patience`` seconds."""
    last, last_change = -1, time.time()
    while True:
        stored = stored_readings(server, headers)
        now = time.time()
        if stored >= target:
            return stored, now
        if stored != last:
            last, last_change = stored, now
        elif now - last_change > patience:
            return stored, None
        time.sleep(0.2)


def fleet(database_url: str, workdir: Path) -> dict:
    broker = Broker(workdir / "broker-fleet")
    broker.start()
    server = Server(database_url, workdir / "server-fleet.log", workers=WORKERS,
                    mqtt_url=broker.url, mqtt_auth="open", mqtt_client_id="bench-fleet",
                    max_future_seconds=str(10**10))
    server.start()
    try:
        headers = server.login()
        deadline = time.monotonic() + 30
        while httpx.get(server.base + "/health").json()["mqtt"] != "connected":
            if time.monotonic() > deadline:
                raise RuntimeError("Telemetra did not connect to the broker")
            time.sleep(0.1)
        organization_id = httpx.get(server.base + API + "/organizations/me",
                                    headers=headers).json()["id"]
        one = httpx.post(server.base + API + "/devices", headers=headers,
                         json={"name": "mqtt-bench"}).json()
        devices = create_devices(database_url, organization_id)
        topics = [f"telemetra/devices/{device_id}/readings" for device_id, _ in devices]
        results: dict = {"devices": len(devices)}
        # Warm-up: the one device, then every device of the fleet once (sensors created).
        stored = stored_readings(server, headers)
        publish_spread(broker.port, [f"telemetra/devices/{one['id']}/readings"], workdir,
                       PUBLISHERS * 1000, 0)
        stored, _ = wait_stored(server, headers, stored + PUBLISHERS * 3000, patience=300)
        started = time.time()
        all_topics = workdir / "all-topics.txt"
        all_topics.write_text("\n".join(topics))
        subprocess.run([sys.executable, __file__, "warm", str(broker.port), str(all_topics)],
                       check=True)
        # Patient: a phase that started with the warm-up's messages still queued would
        # measure them (each the first of its device: its sensors created), not its own.
        stored, done = wait_stored(server, headers, stored + len(topics) * 3, patience=300)
        if done is None:
            raise RuntimeError("the warm-up's messages were not all stored")
        results["warm_per_s"] = len(topics) / (time.time() - started)
        # The fleet twice: the second run, every device and sensor seen, must add no memory.
        for run, name, targets in ((1, "one", [f"telemetra/devices/{one['id']}/readings"]),
                                   (2, "fleet", topics), (3, "again", topics)):
            rss_start = tree_rss_mb(server.process.pid)
            before = stored_readings(server, headers)
            sent = (FLEET_MESSAGES // PUBLISHERS) * PUBLISHERS
            started = publish_spread(broker.port, targets, workdir, FLEET_MESSAGES, run)
            stored, finished = wait_stored(server, headers, before + sent * 3)
            results[name] = {"sent": sent, "received": (stored - before) // 3,
                             "per_s": (stored - before) / 3 / ((finished or time.time())
                                                               - started),
                             "rss_start": rss_start, "rss_end": tree_rss_mb(server.process.pid)}
    finally:
        server.stop()
        broker.stop()
    log = (workdir / "server-fleet.log").read_text(errors="replace")
    # "MQTT connection to ... lost (...); reconnecting", and a read that failed (the link
    # reconnects then too, without the first line)
    results["reconnects"] = log.count("MQTT connection to") + log.count("MQTT read failed")
    results["dropped"] = log.count("acknowledged and dropped")
    return results


def warm(port: int, topics_file: Path) -> None:
    """One message to each topic of the file, in order (QoS 1, all acknowledged)."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-fleet-warm",
                         protocol=MQTTProtocolVersion.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [client.publish(topic, b'{"ts":%d,"values":{"temperature":1,"humidity":1,'
                                   b'"pressure":1}}' % (T0_MS - 10**9 + n), qos=1)
             for n, topic in enumerate(topics_file.read_text().split())]
    for info in infos:
        info.wait_for_publish(600)
    client.disconnect()
    client.loop_stop()


def report_fleet(results: dict) -> None:
    one, spread, again = results["one"], results["fleet"], results["again"]
    print(f"\n== MQTT fleet, PostgreSQL (fsync on), Python paho publishers x{PUBLISHERS} ==")
    print(f"warm-up, one message from each of {results['devices']:,} devices: "
          f"{results['warm_per_s']:,.0f} messages/s")
    for name, run in (("one device", one), (f"{results['devices']:,} devices", spread),
                      (f"{results['devices']:,} devices again", again)):
        print(f"{name}: {run['per_s']:,.0f} messages/s, sent {run['sent']:,}, stored "
              f"{run['received']:,}, lost {run['sent'] - run['received']:,}; server RSS "
              f"{run['rss_start']:.1f} MB at the start, {run['rss_end']:.1f} MB at the end")
    print(f"  ratio fleet/one device: {spread['per_s'] / max(one['per_s'], 1e-9):.2f} (again: "
          f"{again['per_s'] / max(one['per_s'], 1e-9):.2f}); server RSS added by the fleet "
          f"run {spread['rss_end'] - spread['rss_start']:+.1f} MB, by the second "
          f"{again['rss_end'] - again['rss_start']:+.1f} MB; MQTT reconnects of the server: "
          f"{results['reconnects']}, messages dropped for an internal error: {results['dropped']}")


def main() -> None:
    print(f"{MESSAGES:,} messages, {PUBLISHERS} publisher processes, QoS 1, "
          f"3 readings a message, {os.cpu_count()} cores, telemetra serve --workers {WORKERS}")
    workdir = Path(tempfile.mkdtemp(prefix="telemetra-bench-mqtt-"))
    ours = spread = None
    try:
        bare = baseline(workdir) if "bare" in PHASES else None
        with pgcluster.throwaway_cluster(durable=True, shared_buffers="128MB") as cluster:
            if "bare" in PHASES:
                ours = telemetra(pgcluster.create_database(cluster.url, "bench"), workdir)
            if "fleet" in PHASES:
                spread = fleet(pgcluster.create_database(cluster.url, "fleet"), workdir)
    finally:
        if os.environ.get("BENCH_KEEP"):  # the servers' and brokers' logs, to read after
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if spread is not None:
        report_fleet(spread)
    if ours is None:
        return
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
    elif len(sys.argv) > 1 and sys.argv[1] == "publish":
        py_publisher(int(sys.argv[2]), Path(sys.argv[3]), *map(int, sys.argv[4:7]))
    elif len(sys.argv) > 1 and sys.argv[1] == "warm":
        warm(int(sys.argv[2]), Path(sys.argv[3]))
    else:
        main()
