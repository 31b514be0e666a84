"""What the relay between processes (telemetra.db.relay) costs ingestion.

    .venv/bin/python bench/relay.py          BENCH_SECONDS=10 BENCH_ROUNDS=3
                                             BENCH_PARTS=relay,broadcast
                                             BENCH_BACKENDS=sqlite,postgresql

On SQLite every process polls ``relayed_events`` every 50 ms, whether or not another process
shares the file; on PostgreSQL a process holds one idle LISTEN connection (pinged every 5 s)
and ingestion itself records no events, so there is nothing to measure there beyond noise.
Prints, on one SQLite file:
1. bench/ingest.py's one-device phase (one reading a request, wrk -c32) against
   ``telemetra serve`` with the relay and the same server with it off, alternating rounds
   (A B A B ...) so that a busy machine weighs on both alike; medians and their ratio;
2. one poll's own cost, timed in this process: wall time and CPU time per poll, and the CPU
   share of 20 polls a second.

``broadcast`` (telemetra.db.relay.readings), per backend: bench/ingest.py's batch phase
(1,000 readings a request, wrk -c8) against one ``telemetra serve`` with no other process,
with a remote subscriber (tests/db/readings_probe.py, another process wanting this
organization's readings, so every committed row is sent to it) over the database's transport,
and with the same over a throwaway ``redis-server``; rounds alternate the three; medians, the
ratios to "none", and the share of the rows the subscriber received.
"""

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import count_readings, device_key, wrk  # noqa: E402
from tests.server import Server  # noqa: E402

SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
PARTS = os.environ.get("BENCH_PARTS", "relay,broadcast").split(",")
BACKENDS = os.environ.get("BENCH_BACKENDS", "sqlite,postgresql").split(",")
_RELAY_OFF = ("import telemetra.db.relay as relay; relay.relay_for = lambda *args: None\n"
              "from telemetra.cli import app\napp()\n")


class BenchServer(Server):
    """``telemetra serve`` (one worker), or the same with the relay never started."""

    def __init__(self, database_url: str, log_path: Path, relay: bool) -> None:
        super().__init__(database_url, log_path, workers=1, max_future_seconds=str(10**10))
        self.relay = relay

    def start(self, timeout: float = 60) -> None:
        env = {**os.environ, "TELEMETRA_DATABASE_URL": self.database_url,
               "TELEMETRA_ADMIN_USERNAME": "root", "TELEMETRA_ADMIN_PASSWORD":
               "root-password-for-tests", "TELEMETRA_LOG_LEVEL": "WARNING",
               "TELEMETRA_ENV": "test", "TELEMETRA_MAX_FUTURE_SECONDS": str(10**10)}
        command = ["-m", "telemetra"] if self.relay else ["-c", _RELAY_OFF]
        self.process = subprocess.Popen(
            [sys.executable, *command, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env, stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=ROOT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(self.log_path.read_text()[-3000:])
            try:
                if httpx.get(self.base + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log_path.read_text()[-3000:]}")


def single_phase(database_url: str, workdir: Path, relay: bool, base: int) -> dict:
    server = BenchServer(database_url, workdir / f"server-{relay}.log", relay)
    server.start()
    try:
        _, key = device_key(server)
        env = {"TELEMETRA_KEY": key}
        wrk("single.lua", server.base, 8, {**env, "BENCH_BASE": str(base)}, 2)  # warm-up
        return wrk("single.lua", server.base, 32, {**env, "BENCH_BASE": str(base + 10**7)})
    finally:
        server.stop()


async def poll_cost(database_url: str, polls: int = 2000) -> tuple[float, float]:
    """Wall and CPU microseconds of one poll that finds nothing (the usual case)."""
    from telemetra.db.engine import create_engine
    from telemetra.db.relay.sqlite import SqliteRelay
    from telemetra.kit.events import EventBus

    engine = create_engine(database_url)
    relay = SqliteRelay(engine, EventBus())
    await relay._open()
    try:
        for _ in range(100):
            await relay.poll()
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(polls):
            await relay.poll()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await relay._close()
        await engine.dispose()
    return wall / polls * 1e6, cpu / polls * 1e6


def broadcast_phase(database_url: str, workdir: Path, subscriber: str, base: int) -> dict:
    """The batch phase against one server; ``subscriber``: none, database or redis."""
    from tests.redis_server import RedisServer

    redis = RedisServer(workdir / f"redis-{base}").start() if subscriber == "redis" else None
    server = Server(database_url, workdir / f"server-{subscriber}.log", workers=1,
                    max_future_seconds=str(10**10), redis_url=redis.url if redis else "")
    probe = None
    try:
        server.start()
        headers = server.login()
        org = httpx.get(server.base + "/api/v1/organizations/me", headers=headers).json()["id"]
        _, key = device_key(server)
        env = {"TELEMETRA_KEY": key}
        if subscriber != "none":
            probe = subprocess.Popen(
                [sys.executable, "-m", "tests.db.readings_probe", database_url,
                 redis.url if redis else "-", str(org), "count"], cwd=ROOT, text=True,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            while (line := probe.stdout.readline()) and line.strip() != "ready":
                pass  # a log line or a warning first
            time.sleep(1.5)  # a heartbeat: the server knows the subscriber's interest
        wrk("batch.lua", server.base, 8, {**env, "BENCH_BASE": str(base)}, 3)  # warm-up
        result = wrk("batch.lua", server.base, 8, {**env, "BENCH_BASE": str(base + 10**8)})
        result["received"] = None
        if probe is not None:
            time.sleep(1.5)
            probe.stdin.close()
            lines = [line for line in probe.stdout.read().splitlines() if '"rows"' in line]
            probe.wait(30)
            received = json.loads(lines[-1])["rows"] if lines else 0
            stored = count_readings(server, 0)  # the organization's, warm-up included
            result["received"] = received / stored if stored else 0
        return result
    finally:
        if probe is not None and probe.poll() is None:
            probe.kill()
        server.stop()
        if redis is not None:
            redis.stop()


def broadcast_bench(database_url: str, workdir: Path, label: str) -> None:
    print(f"\nreadings to a remote subscriber, {label}: batches of 1,000 readings, wrk -c8")
    kinds = ("none", "database", "redis")
    results: dict[str, list[dict]] = {kind: [] for kind in kinds}
    base = 1_600_000_000
    for round_ in range(ROUNDS):
        for kind in kinds if round_ % 2 == 0 else tuple(reversed(kinds)):
            base += 10**9
            result = broadcast_phase(database_url, workdir, kind, base)
            results[kind].append(result)
            share = ("" if result["received"] is None
                     else f", subscriber got {result['received']:.0%} of the rows")
            print(f"  round {round_ + 1}, subscriber {kind:8}: {result['rps'] * 1000:,.0f} "
                  f"readings/s, p99 {result['p99_ms']:.0f} ms{share}", flush=True)
    none = statistics.median(r["rps"] for r in results["none"])
    for kind in kinds:
        rps = statistics.median(r["rps"] for r in results[kind])
        print(f"  median, subscriber {kind:8}: {rps * 1000:,.0f} readings/s, "
              f"ratio to none {rps / none:.3f}")


def main() -> None:
    print(f"{SECONDS:.0f} s per measurement, {ROUNDS} rounds each, {os.cpu_count()} cores, "
          "telemetra serve --workers 1")
    workdir = Path(tempfile.mkdtemp(prefix="telemetra-bench-relay-"))
    try:
        if "broadcast" in PARTS:
            if "sqlite" in BACKENDS:
                broadcast_bench(f"sqlite:///{workdir / 'broadcast.db'}", workdir,
                                "SQLite (WAL, synchronous=FULL)")
            if "postgresql" in BACKENDS:
                from tests import pgcluster

                with pgcluster.throwaway_cluster(durable=True,
                                                 shared_buffers="128MB") as cluster:
                    broadcast_bench(pgcluster.create_database(cluster.url, "bench"), workdir,
                                    "PostgreSQL (fsync on)")
        if "relay" not in PARTS:
            return
        print("\nthe relay's polling, SQLite (WAL, synchronous=FULL)")
        url = f"sqlite:///{workdir / 'bench.db'}"
        results: dict[bool, list[dict]] = {True: [], False: []}
        base = 1_700_000_000
        for round_ in range(ROUNDS):
            for relay in (True, False) if round_ % 2 == 0 else (False, True):
                base += 10**8
                result = single_phase(url, workdir, relay, base)
                results[relay].append(result)
                print(f"  round {round_ + 1}, relay {'on ' if relay else 'off'}: "
                      f"{result['rps']:,.0f} req/s, p99 {result['p99_ms']:.1f} ms "
                      f"(non-2xx {result['non2xx']})", flush=True)
        on = statistics.median(r["rps"] for r in results[True])
        off = statistics.median(r["rps"] for r in results[False])
        on_p99 = statistics.median(r["p99_ms"] for r in results[True])
        off_p99 = statistics.median(r["p99_ms"] for r in results[False])
        print("\none reading/request, medians:")
        print(f"  relay on (polling every 50 ms): {on:,.0f} req/s, p99 {on_p99:.1f} ms")
        print(f"  relay off:                      {off:,.0f} req/s, p99 {off_p99:.1f} ms")
        print(f"  ratio on/off: {on / off:.3f}")
        pairs = [a["rps"] / b["rps"] for a, b in zip(results[True], results[False])]
        print("  ratio on/off round by round: " + ", ".join(f"{r:.2f}" for r in pairs))
        wall, cpu = asyncio.run(poll_cost(url))
        print(f"one empty poll: {wall:.0f} us wall, {cpu:.0f} us CPU; at 20 polls/s "
              f"{cpu * 20 / 1e4:.2f}% of one core")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
