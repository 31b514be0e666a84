"""Ingestion benchmark: Telemetra against raw database writes and a bare endpoint, one run.

    .venv/bin/python bench/ingest.py            (or: make bench)
    BENCH_SECONDS=20 BENCH_BACKENDS=postgresql,sqlite

Prints, for PostgreSQL and SQLite:
1. batch ingestion (1,000 readings a request over HTTP, wrk) in readings/s, against raw
   asyncpg copy_records_to_table (PostgreSQL) or sqlite3 executemany (SQLite) of the same rows,
   1,000 a batch, into a table of the same shape, on the same database;
2. one reading a request, requests/s and p99 latency, against a bare FastAPI endpoint that
   parses the same body and answers 202 without storing it; next to it, the disk's own
   fsync stalls during the same seconds (see DiskProbe);
3. the same load from a fleet: BENCH_FLEET_DEVICES (5,000) devices with 5 sensors each, every
   request for a random device with its own key and one random sensor, after a warm-up pass in
   which every sensor is seen; printed beside the one-device figure with the ratio, and the
   resident memory of the server's processes at the start and the end of the measured seconds
   (flat: nothing grows once every sensor has been seen). Fleet and one device alternate,
   BENCH_FLEET_ROUNDS (2) times each, in the same minutes: the ratio is theirs.
    BENCH_LIMITS=compare measures rate limits and quotas on against off instead (batch and
    single, SQLite, alternating in pairs; see LIMITS below).
    BENCH_PHASES=batch,single,fleet picks phases (all by default); BENCH_PYSPY=/tmp/f.txt
    records the server during the fleet phase (py-spy's folded stacks); BENCH_SUBSCRIBER=1
    gives every server process a trivial ReadingsCommitted subscriber (bench/subscriber), so
    the writer builds and publishes every batch's event, as it does once anything reacts.
    BENCH_REACTIONS=1 keeps 100 alert rules on the device's keys (a few holding, most never
    firing) and bench/live.py's 200 subscribed sockets present during the phases
    (bench/alert_rules.py, Reactions); BENCH_REACTIONS=rules the rules alone.
Every Telemetra request is durable: answered only after its commit. Ratios are what matter
on a shared machine; absolute figures drift.
"""

import asyncio
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fleet import create_devices, tree_rss_mb, warm_up  # noqa: E402
from tests import pgcluster  # noqa: E402  (the same throwaway cluster the tests use)
from tests.server import API, Server, free_port  # noqa: E402

SECONDS = float(os.environ.get("BENCH_SECONDS", "20"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "1"))
BACKENDS = os.environ.get("BENCH_BACKENDS", "postgresql,sqlite").split(",")
PROFILE = os.environ.get("BENCH_PYSPY")  # a file: py-spy's folded stacks of the fleet phase
PHASES = os.environ.get("BENCH_PHASES", "batch,single,fleet").split(",")
SUBSCRIBER = os.environ.get("BENCH_SUBSCRIBER") == "1"
FLEET_ROUNDS = int(os.environ.get("BENCH_FLEET_ROUNDS", "2"))
# BENCH_LIMITS=compare: the batch and single phases with rate limits and quotas off, then on,
# BENCH_LIMITS_PAIRS times alternating (paired: noise on a shared machine hits both), and the
# ratios on/off. "On": every limit counted (ingest per key, API per user, login) and the
# organization on a plan with a daily readings quota, both set high enough never to refuse,
# so the figure is what checking them costs.
LIMITS = os.environ.get("BENCH_LIMITS", "")
LIMITS_PAIRS = int(os.environ.get("BENCH_LIMITS_PAIRS", "2"))
LIMITS_OFF = {"rate_limit_ingest": "off", "rate_limit_api": "off", "rate_limit_login": "off"}
LIMITS_ON = {"rate_limit_ingest": "1000000/second", "rate_limit_api": "1200/minute",
             "rate_limit_login": "10/minute", "default_plan": "bench",
             "plans": '{"bench": {"readings_per_day": 2000000000}}'}
REACTIONS = os.environ.get("BENCH_REACTIONS") in ("1", "rules")  # "rules": without sockets
BENCH = Path(__file__).resolve().parent
if SUBSCRIBER:  # the server's processes (and uvicorn's spawned workers) inherit it
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(BENCH / "subscriber"), os.environ.get("PYTHONPATH")]))


def wrk(script: str, url: str, connections: int, env: dict, seconds: float = SECONDS) -> dict:
    result = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{int(seconds)}s", "--latency", "-s",
         str(BENCH / script), url], capture_output=True, text=True,
        env={**os.environ, **env}, timeout=seconds + 60)
    out = result.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else None,
            "non2xx": int(non2xx.group(1)) if non2xx else 0, "raw": out}


class DiskProbe:
    """A small write and ``fdatasync`` every 5 ms in ``directory`` while a phase runs. A
    durable request is not answered before the disk has synced it, so when this machine's
    disk stalls (measured here: 50 ms to 1.3 s, a few times a minute) every request in flight
    waits that long, and the p99 shows it. Printed next to the p99 so a run can be read."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "disk-probe"
        self.syncs_ms: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "DiskProbe":
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()
        self.path.unlink(missing_ok=True)

    def _run(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            while not self._stop.wait(0.005):
                os.write(fd, b"x" * 4096)
                started = time.perf_counter()
                os.fdatasync(fd)
                self.syncs_ms.append((time.perf_counter() - started) * 1000)
        finally:
            os.close(fd)

    def summary(self) -> str:
        slow = [ms for ms in self.syncs_ms if ms > 20]
        return (f"{len(slow)} of {len(self.syncs_ms):,} fdatasync calls over 20 ms, longest "
                f"{max(self.syncs_ms, default=0):.0f} ms")


def device_key(server: Server) -> tuple[int, str]:
    headers = server.login()
    device = httpx.post(server.base + API + "/devices", headers=headers,
                        json={"name": "bench"}).json()
    return device["id"], device["api_key"]


def count_readings(server: Server, device_id: int) -> int:
    headers = server.login()
    return httpx.get(server.base + API + "/organizations/me/usage", headers=headers,
                     timeout=120).json()["readings_total"]


def rows_for(batch: int, sensor_ids: list[int]):
    t0 = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(seconds=batch * 100)
    return [(sensor_ids[k], t0 + timedelta(seconds=i), float(i), 0, None, None)
            for i in range(100) for k in range(10)]


async def copy_baseline(url: str, seconds: float, concurrency: int = 4) -> float:
    """Raw asyncpg copy_records_to_table, 1,000 rows a batch, into a readings-shaped table."""
    import asyncpg

    setup = await asyncpg.connect(url)
    await setup.execute("""
        DROP TABLE IF EXISTS bench_readings;
        CREATE TABLE bench_readings (sensor_id integer NOT NULL, ts timestamptz NOT NULL,
            value double precision NOT NULL, flags smallint NOT NULL DEFAULT 0, tags jsonb,
            meta jsonb, PRIMARY KEY (sensor_id, ts)) PARTITION BY RANGE (ts);
        CREATE TABLE bench_readings_all PARTITION OF bench_readings
            FOR VALUES FROM ('2000-01-01') TO ('2100-01-01');
    """)
    await setup.close()
    counter = 0
    written = 0
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal counter, written
        conn = await asyncpg.connect(url)
        try:
            while time.monotonic() < deadline:
                counter += 1
                rows = rows_for(counter, list(range(1, 11)))
                await conn.copy_records_to_table(
                    "bench_readings", records=rows,
                    columns=["sensor_id", "ts", "value", "flags", "tags", "meta"])
                written += len(rows)
        finally:
            await conn.close()

    started = time.monotonic()
    await asyncio.gather(*[worker() for _ in range(concurrency)])
    return written / (time.monotonic() - started)


def sqlite_baseline(path: Path, seconds: float) -> float:
    """Raw sqlite3 executemany, 1,000 rows a transaction, WAL and synchronous=FULL as served."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS bench_readings (sensor_id INTEGER NOT NULL, "
                 "ts BIGINT NOT NULL, value FLOAT NOT NULL, flags SMALLINT NOT NULL DEFAULT 0, "
                 "tags JSON, meta JSON, PRIMARY KEY (sensor_id, ts)) WITHOUT ROWID")
    written, batch = 0, 0
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        batch += 1
        rows = [(r[0], int(r[1].timestamp() * 1_000_000), r[2], r[3], None, None)
                for r in rows_for(batch, list(range(1, 11)))]
        conn.execute("BEGIN")
        conn.executemany("INSERT OR IGNORE INTO bench_readings VALUES (?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
        written += len(rows)
    conn.close()
    return written / (time.monotonic() - started)


def bare_endpoint(seconds: float) -> dict:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--workers", str(WORKERS)], cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        return wrk("single.lua", f"http://127.0.0.1:{port}", 32, {"TELEMETRA_KEY": "x"},
                   seconds)
    finally:
        process.terminate()
        process.wait(10)


def telemetra_runs(database_url: str, workdir: Path, backend: str,
                   settings: dict | None = None) -> dict:
    # The wrk scripts give every request a time window of its own, far into the future
    # (BENCH_BASE 1.8e9, 1.9e9 and 2.0e9, threads 1e9 s apart): let those through.
    server = Server(database_url, workdir / f"server-{backend}.log", workers=WORKERS,
                    max_future_seconds=str(10**10), **(settings or {}),
                    **({"access_token_minutes": "600"} if REACTIONS else {}))
    server.start(timeout=300)  # a loaded machine: start-up (migrations, two workers) is slow
    out: dict = {}
    try:
        device_id, key = device_key(server)
        env = {"TELEMETRA_KEY": key}
        if REACTIONS:
            from bench.alert_rules import Reactions
            reactions = Reactions(server, device_id, workdir,
                                  sockets=os.environ["BENCH_REACTIONS"] == "1")
        if "batch" in PHASES:
            wrk("batch.lua", server.base, 8, env, 3)  # warm-up: sensors, partitions, caches
            before = count_readings(server, device_id)
            batch = wrk("batch.lua", server.base, 8, {**env, "BENCH_BASE": "1800000000"})
            out.update(batch_readings_per_s=batch["rps"] * 1000, batch_non2xx=batch["non2xx"],
                       batch_stored=count_readings(server, device_id) - before,
                       batch_expected=int(batch["rps"] * SECONDS * 1000))
        if "single" in PHASES or "fleet" in PHASES:
            wrk("single.lua", server.base, 32, {**env, "BENCH_BASE": "1700000000"}, 3)
            with DiskProbe(workdir) as disk:
                single = wrk("single.lua", server.base, 32, {**env, "BENCH_BASE": "1900000000"})
            out.update(single_rps=single["rps"], single_p99_ms=single["p99_ms"],
                       single_non2xx=single["non2xx"], single_disk=disk.summary())
        if "fleet" in PHASES:
            out.update(fleet_run(server, database_url, workdir, env))
        if REACTIONS:
            out["reactions"] = reactions.stop()
    finally:
        server.stop()
    return out


def fleet_run(server: Server, database_url: str, workdir: Path, one_device: dict) -> dict:
    """Phase 3: the one-reading load from a fleet of devices, alternating with the same load
    from one device (``one_device``: its wrk environment) FLEET_ROUNDS times, so both
    figures come from the same minutes and the machine's drift shows as spread, not as a
    ratio."""
    headers = server.login()
    organization_id = httpx.get(server.base + API + "/organizations/me",
                                headers=headers).json()["id"]
    started = time.monotonic()
    fleet = create_devices(database_url, organization_id)
    keys_file = workdir / "fleet-keys.txt"
    keys_file.write_text("".join(f"{device_id} {key}\n" for device_id, key in fleet))
    created_s = time.monotonic() - started
    env = {"BENCH_KEYS": str(keys_file)}
    # Warm-up: every device with its 5 sensors (created then), a few passes, then a few
    # seconds of the measured load, so each process has seen what it will be asked.
    warm_rps = warm_up(server.base, fleet)
    wrk("fleet.lua", server.base, 32, {**env, "BENCH_BASE": "1650000000"}, 5)
    rss_start = tree_rss_mb(server.process.pid)
    profile = None
    if PROFILE:  # py-spy over the server's processes during the measured seconds
        profile = subprocess.Popen(
            [str(Path(sys.executable).parent / "py-spy"), "record", "--subprocesses",
             "--format", "raw", "-d", str(int(SECONDS) - 2), "-o", PROFILE,
             "--pid", str(server.process.pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    fleet_runs, one_runs = [], []
    with DiskProbe(workdir) as disk:
        for round_ in range(FLEET_ROUNDS):
            base = 2_000_000_000 + round_ * 1_000_000  # each run a time window of its own
            fleet_runs.append(wrk("fleet.lua", server.base, 32,
                                  {**env, "BENCH_BASE": str(base)}))
            if round_ == 0 and profile is not None:
                profile.wait(60)
            one_runs.append(wrk("single.lua", server.base, 32,
                                {**one_device, "BENCH_BASE": str(base + 500_000)}))
    rss_end = tree_rss_mb(server.process.pid)
    return {"fleet_devices": len(fleet), "fleet_created_s": created_s,
            "fleet_warm_rps": warm_rps,
            "fleet_rps": sum(r["rps"] for r in fleet_runs) / len(fleet_runs),
            "fleet_each": [r["rps"] for r in fleet_runs],
            "fleet_one_each": [r["rps"] for r in one_runs],
            "fleet_p99_ms": max(r["p99_ms"] for r in fleet_runs),
            "fleet_non2xx": sum(r["non2xx"] for r in fleet_runs),
            "fleet_disk": disk.summary(), "fleet_rss_start_mb": rss_start,
            "fleet_rss_end_mb": rss_end}


def report(backend: str, ours: dict, baseline: float | None, bare: dict | None,
           baseline_name: str) -> None:
    print(f"\n== {backend} ==")
    if "reactions" in ours:
        print(f"reactions: {ours['reactions']}")
    if "batch_readings_per_s" in ours:
        print(f"batch ingestion, 1,000 readings/request: {ours['batch_readings_per_s']:,.0f} "
              f"readings/s (non-2xx {ours['batch_non2xx']}, stored {ours['batch_stored']:,})")
        print(f"  baseline {baseline_name}: {baseline:,.0f} rows/s")
        print(f"  ratio: {ours['batch_readings_per_s'] / baseline:.2f}")
    if "single_rps" in ours:
        print(f"one reading/request: {ours['single_rps']:,.0f} req/s, p99 "
              f"{ours['single_p99_ms']:.1f} ms (non-2xx {ours['single_non2xx']})")
        print(f"  the disk meanwhile (a probe syncing every 5 ms): {ours['single_disk']}")
        if bare is not None:
            print(f"  baseline bare FastAPI endpoint ({WORKERS} worker(s)): {bare['rps']:,.0f} "
                  f"req/s, p99 {bare['p99_ms']:.1f} ms")
            print(f"  ratio: {ours['single_rps'] / bare['rps']:.2f}")
    if "fleet_rps" in ours:
        print(f"fleet, one reading/request, {ours['fleet_devices']:,} devices x 5 sensors "
              f"(created in {ours['fleet_created_s']:.1f} s; warm-up passes "
              f"{ours['fleet_warm_rps']:,.0f} req/s): {ours['fleet_rps']:,.0f} req/s, p99 "
              f"{ours['fleet_p99_ms']:.1f} ms (non-2xx {ours['fleet_non2xx']})")
        print(f"  the disk meanwhile: {ours['fleet_disk']}")
        fleet_each, one_each = ours["fleet_each"], ours["fleet_one_each"]
        print("  alternating with one device, req/s: " + ", ".join(
            f"fleet {f:,.0f} / one {o:,.0f}" for f, o in zip(fleet_each, one_each)))
        print(f"  ratio fleet/one device: {sum(fleet_each) / sum(one_each):.2f} (each round: "
              + ", ".join(f"{f / o:.2f}" for f, o in zip(fleet_each, one_each)) + ")")
        print(f"  server RSS (all processes): {ours['fleet_rss_start_mb']:.1f} MB at the "
              f"start, {ours['fleet_rss_end_mb']:.1f} MB at the end of the measured seconds")


def limits_compare(workdir: Path) -> None:
    """BENCH_LIMITS=compare: off and on alternating, each on a fresh SQLite file, and the
    ratios of the pairs (on / off)."""
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    for pair in range(LIMITS_PAIRS):
        for mode, settings in (("off", LIMITS_OFF), ("on", LIMITS_ON)):
            url = f"sqlite:///{workdir / f'limits-{mode}-{pair}.db'}"
            runs[mode].append(telemetra_runs(url, workdir, f"limits-{mode}", settings))
            load = os.getloadavg()
            ours = runs[mode][-1]
            print(f"pair {pair + 1} limits {mode}: batch "
                  f"{ours.get('batch_readings_per_s', 0):,.0f} readings/s, single "
                  f"{ours.get('single_rps', 0):,.0f} req/s (non-2xx "
                  f"{ours.get('batch_non2xx', 0)}/{ours.get('single_non2xx', 0)}); "
                  f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    for name, field in (("batch", "batch_readings_per_s"), ("single", "single_rps")):
        if field not in runs["on"][0]:
            continue
        ratios = [on[field] / off[field] for off, on in zip(runs["off"], runs["on"])]
        total = sum(r[field] for r in runs["on"]) / sum(r[field] for r in runs["off"])
        print(f"limits and quotas on/off, {name}: pairs "
              + ", ".join(f"{ratio:.3f}" for ratio in ratios) + f"; all runs {total:.3f}")


def main() -> None:
    if LIMITS == "compare":
        print(f"{SECONDS:.0f} s per measurement, {os.cpu_count()} cores, SQLite, "
              f"telemetra serve --workers {WORKERS}, limits and quotas off against on")
        workdir = Path(tempfile.mkdtemp(prefix="telemetra-bench-"))
        try:
            limits_compare(workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return
    if shutil.which("wrk") is None:
        sys.exit("bench/ingest.py needs wrk: apt-get install wrk (make bench does it)")
    print(f"{SECONDS:.0f} s per measurement, {os.cpu_count()} cores, backends: {BACKENDS}, "
          f"telemetra serve --workers {WORKERS}"
          + (", a ReadingsCommitted subscriber" if SUBSCRIBER else "")
          + (f", reactions: {os.environ['BENCH_REACTIONS']}" if REACTIONS else "")
          + f", load average {os.getloadavg()[0]:.1f}")
    bare = bare_endpoint(SECONDS) if "single" in PHASES else None
    workdir = Path(tempfile.mkdtemp(prefix="telemetra-bench-"))
    try:
        if "postgresql" in BACKENDS:
            # fsync on, and PostgreSQL's default shared_buffers (the tests use less)
            with pgcluster.throwaway_cluster(durable=True, shared_buffers="128MB") as cluster:
                url = pgcluster.create_database(cluster.url, "bench")
                ours = telemetra_runs(url, workdir, "postgresql")
                baseline = (asyncio.run(copy_baseline(url, SECONDS)) if "batch" in PHASES
                            else None)
                report("PostgreSQL (fsync on)", ours, baseline,
                       bare, "asyncpg copy_records_to_table x4")
        if "sqlite" in BACKENDS:
            ours = telemetra_runs(f"sqlite:///{workdir / 'bench.db'}", workdir, "sqlite")
            baseline = (sqlite_baseline(workdir / "baseline.db", SECONDS)
                        if "batch" in PHASES else None)
            report("SQLite (WAL, synchronous=FULL)", ours, baseline, bare,
                   "sqlite3 executemany")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
