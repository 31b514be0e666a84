"""Query benchmark on 10 million readings (1,000 sensors, 30 days), both databases.

    .venv/bin/python bench/queries.py        (make bench runs it after ingest.py)
    BENCH_READINGS=10000000 BENCH_BACKENDS=postgresql,sqlite BENCH_REPEAT=30

For each query: Telemetra's own query (the service function, the SQL it generates, run
in-process) and the same question written by hand in SQL on the same database, as medians and
their ratio; and the end-to-end HTTP latency of the endpoint (auth, query, JSON). The two are
timed alternately, on the same connection and driver call (asyncpg ``fetch``, aiosqlite
``execute_fetchall``), so that load from elsewhere on the machine weighs on both alike. The
hand-written queries answer the same question: the latest one returns what the endpoint does
(each reading with its flags, tags, meta and sensor) and stays within the organization.
1. latest reading of each sensor of one device (10 sensors)
2. 7 days at 1-hour buckets (avg) for one sensor
3. 1 day at 1-hour buckets (avg) for every sensor of one site (100 sensors)
"""

import asyncio
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from telemetra.db.engine import create_engine  # noqa: E402
from telemetra.db.migrate import upgrade  # noqa: E402
from telemetra.ingest.partitions import Partitions, months_around  # noqa: E402
from telemetra.readings import aggregate as agg  # noqa: E402
from telemetra.readings.buckets import Interval  # noqa: E402
from telemetra.readings.query import ReadingFilter, latest_readings  # noqa: E402
from tests import pgcluster  # noqa: E402
from tests.server import API, Server  # noqa: E402

READINGS = int(os.environ.get("BENCH_READINGS", "10000000"))
BACKENDS = os.environ.get("BENCH_BACKENDS", "postgresql,sqlite").split(",")
REPEAT = int(os.environ.get("BENCH_REPEAT", "30"))
SENSORS, DEVICES, SITES, DAYS = 1000, 100, 10, 30
END = datetime(2026, 6, 30, tzinfo=UTC)
START = END - timedelta(days=DAYS)
PER_SENSOR = READINGS // SENSORS
STEP = timedelta(days=DAYS) / PER_SENSOR
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


SETUP_SQL = [
    "INSERT INTO organizations (id, name, plan, retention_days, invalid_tags, created_at, "
    "updated_at) VALUES (1000, 'bench', 'free', 3650, '[]', {now}, {now})",
    *[f"INSERT INTO sites (id, organization_id, name, created_at, updated_at) VALUES "
      f"({s}, 1000, 'site{s}', {{now}}, {{now}})" for s in range(1, SITES + 1)],
]


def _setup_rows():
    devices = [(d, 1000, 1 + (d - 1) // (DEVICES // SITES), f"device{d}", f"tdk_bench{d:04d}", "x")
               for d in range(1, DEVICES + 1)]
    sensors = [(s, 1000, 1 + (s - 1) // (SENSORS // DEVICES), f"k{(s - 1) % 10}")
               for s in range(1, SENSORS + 1)]
    return devices, sensors


async def load_postgresql(url: str) -> None:
    import asyncpg

    engine = create_engine(url)
    await upgrade(engine)
    partitions = Partitions(engine)
    await partitions.ensure(months_around(END, before=2, after=1))
    await engine.dispose()
    conn = await asyncpg.connect(url)
    try:
        for sql in SETUP_SQL:
            await conn.execute(sql.format(now="now()"))
        devices, sensors = _setup_rows()
        await conn.executemany("INSERT INTO devices (id, organization_id, site_id, name, "
                               "api_key_prefix, api_key_hash, status, offline_after_seconds, "
                               "created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, "
                               "'active', 300, now(), now())", devices)
        await conn.executemany("INSERT INTO sensors (id, organization_id, device_id, key, type, "
                               "status, created_at, updated_at) VALUES ($1, $2, $3, $4, 'other', "
                               "'active', now(), now())", sensors)
        for sensor in range(1, SENSORS + 1):
            records = [(sensor, START + STEP * i, float(i % 100), 0) for i in range(PER_SENSOR)]
            await conn.copy_records_to_table("readings", records=records,
                                             columns=["sensor_id", "ts", "value", "flags"])
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def load_sqlite(path: Path) -> None:
    async def migrate() -> None:
        engine = create_engine(f"sqlite:///{path}")
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(migrate())
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    for sql in SETUP_SQL:
        conn.execute(sql.format(now="CURRENT_TIMESTAMP"))
    devices, sensors = _setup_rows()
    conn.executemany("INSERT INTO devices (id, organization_id, site_id, name, api_key_prefix, "
                     "api_key_hash, status, offline_after_seconds, created_at, updated_at) "
                     "VALUES (?, ?, ?, ?, ?, ?, 'active', 300, CURRENT_TIMESTAMP, "
                     "CURRENT_TIMESTAMP)", devices)
    conn.executemany("INSERT INTO sensors (id, organization_id, device_id, key, type, status, "
                     "created_at, updated_at) VALUES (?, ?, ?, ?, 'other', 'active', "
                     "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)", sensors)
    start, step = micros(START), micros(START + STEP) - micros(START)
    for sensor in range(1, SENSORS + 1):
        conn.executemany("INSERT INTO readings (sensor_id, ts, value, flags) VALUES (?, ?, ?, 0)",
                         ((sensor, start + step * i, float(i % 100)) for i in range(PER_SENSOR)))
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


HAND_PG = {
    "latest of one device": (
        "SELECT s.id, r.ts, r.value, r.flags, r.tags, r.meta, s.device_id, s.key, s.unit "
        "FROM sensors s CROSS JOIN LATERAL (SELECT ts, value, flags, tags, meta FROM readings "
        "WHERE sensor_id = s.id AND flags & 1 = 0 ORDER BY ts DESC LIMIT 1) r "
        "WHERE s.organization_id = $1 AND s.device_id = $2 ORDER BY s.id",
        lambda: (1000, 1)),
    "7 days, 1h buckets, one sensor": (
        "SELECT date_bin('1 hour', ts, 'epoch'), avg(value) FROM readings WHERE sensor_id = $1 "
        "AND ts >= $2 AND ts <= $3 AND flags & 1 = 0 GROUP BY 1 ORDER BY 1",
        lambda: (1, END - timedelta(days=7), END)),
    "1 day, 1h buckets, a site's 100 sensors": (
        "SELECT r.sensor_id, date_bin('1 hour', r.ts, 'epoch') AS b, avg(r.value) FROM readings r "
        "WHERE r.sensor_id IN (SELECT s.id FROM sensors s JOIN devices d ON d.id = s.device_id "
        "WHERE d.site_id = $1) AND r.ts >= $2 AND r.ts <= $3 AND r.flags & 1 = 0 "
        "GROUP BY 1, 2 ORDER BY 1, 2", lambda: (1, END - timedelta(days=1), END)),
}
HAND_SQLITE = {
    "latest of one device": (
        "SELECT s.id, r.ts, r.value, r.flags, r.tags, r.meta, s.device_id, s.key, s.unit "
        "FROM sensors s JOIN readings r ON r.sensor_id = s.id AND "
        "r.ts = (SELECT max(ts) FROM readings WHERE sensor_id = s.id AND flags & 1 = 0) "
        "WHERE s.organization_id = ? AND s.device_id = ? ORDER BY s.id", lambda: (1000, 1)),
    "7 days, 1h buckets, one sensor": (
        "SELECT ts / 3600000000 * 3600000000, avg(value) FROM readings WHERE sensor_id = ? AND "
        "ts >= ? AND ts <= ? AND flags & 1 = 0 GROUP BY 1 ORDER BY 1",
        lambda: (1, micros(END - timedelta(days=7)), micros(END))),
    "1 day, 1h buckets, a site's 100 sensors": (
        "SELECT r.sensor_id, r.ts / 3600000000 * 3600000000 AS b, avg(r.value) FROM readings r "
        "WHERE r.sensor_id IN (SELECT s.id FROM sensors s JOIN devices d ON d.id = s.device_id "
        "WHERE d.site_id = ?) AND r.ts >= ? AND r.ts <= ? AND r.flags & 1 = 0 "
        "GROUP BY 1, 2 ORDER BY 1, 2", lambda: (1, micros(END - timedelta(days=1)), micros(END))),
}


def ours(name: str):
    hour, utc = Interval(1, "h"), ZoneInfo("UTC")
    if name == "latest of one device":
        async def latest(conn):  # the first page (default limit), as the endpoint answers
            where = ReadingFilter(organization_id=1000, device_id=1)
            return (await latest_readings(conn, where, limit=100))[0]
        return latest
    if name == "7 days, 1h buckets, one sensor":
        where = ReadingFilter(organization_id=1000, sensor_id=1,
                              start=END - timedelta(days=7), end=END)
        return lambda conn: agg.aggregate(conn, where, hour, ["avg"], utc)
    where = ReadingFilter(organization_id=1000, site_id=1, start=END - timedelta(days=1), end=END)
    return lambda conn: agg.aggregate(conn, where, hour, ["avg"], utc)


HTTP = {
    "latest of one device": ("/readings/latest", {"device_id": 1}),
    "7 days, 1h buckets, one sensor": ("/readings/aggregate", {
        "sensor_id": 1, "interval": "1h", "fn": "avg",
        "start": (END - timedelta(days=7)).isoformat(), "end": END.isoformat()}),
    "1 day, 1h buckets, a site's 100 sensors": ("/readings/aggregate", {
        "site_id": 1, "interval": "1h", "fn": "avg",
        "start": (END - timedelta(days=1)).isoformat(), "end": END.isoformat()}),
}


async def compare(ours, hand) -> tuple[float, int, float, int]:
    """Medians (ms) and row counts of Telemetra's query and the hand-written one, timed
    alternately so that load from elsewhere on the machine weighs on both alike."""
    for _ in range(3):
        await ours()
        await hand()
    times: dict = {ours: [], hand: []}
    rows: dict = {}
    for _ in range(REPEAT):
        for run in (ours, hand):
            started = time.perf_counter()
            rows[run] = await run()
            times[run].append((time.perf_counter() - started) * 1000)
    return (statistics.median(times[ours]), len(rows[ours]),
            statistics.median(times[hand]), len(rows[hand]))


async def measure(url: str, backend: str) -> list[tuple]:
    results = []
    engine = create_engine(url)
    try:
        for name in HAND_PG:
            async with engine.connect() as conn:
                raw = (await conn.get_raw_connection()).driver_connection
                if backend == "postgresql":
                    sql, args = HAND_PG[name]
                    hand = lambda: raw.fetch(sql, *args())  # noqa: E731
                else:
                    sql, args = HAND_SQLITE[name]
                    hand = lambda: raw.execute_fetchall(sql, args())  # noqa: E731
                query = ours(name)
                results.append((name, *await compare(lambda: query(conn), hand)))
    finally:
        await engine.dispose()
    return results


def http_latency(url: str, workdir: Path, backend: str) -> dict:
    server = Server(url, workdir / f"queries-{backend}.log")
    server.start()
    try:
        # The bench organization has no users: give the superadmin's token its organization.
        import sqlalchemy  # noqa: F401

        headers = server.login()
        asyncio.run(_move_admin(url))
        out = {}
        with httpx.Client(base_url=server.base + API, headers=headers, timeout=60) as client:
            for name, (path, params) in HTTP.items():
                for _ in range(3):
                    client.get(path, params=params).raise_for_status()
                times = []
                for _ in range(REPEAT):
                    started = time.perf_counter()
                    client.get(path, params=params).raise_for_status()
                    times.append((time.perf_counter() - started) * 1000)
                out[name] = statistics.median(times)
        return out
    finally:
        server.stop()


async def _move_admin(url: str) -> None:
    from sqlalchemy import update

    from telemetra.db.tables import users

    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(update(users).where(users.c.is_superadmin.is_(True))
                           .values(organization_id=1000))
    await engine.dispose()


def report(backend: str, results: list, http: dict, load_s: float) -> None:
    print(f"\n== {backend}: {READINGS:,} readings loaded in {load_s:.0f} s ==")
    print(f"{'query':42} {'telemetra':>10} {'hand SQL':>10} {'ratio':>6} {'HTTP':>9}")
    for name, our_ms, our_rows, hand_ms, hand_rows in results:
        check = "" if our_rows == hand_rows else f"  (rows {our_rows} vs {hand_rows}!)"
        print(f"{name:42} {our_ms:8.2f}ms {hand_ms:8.2f}ms {our_ms / hand_ms:6.2f} "
              f"{http[name]:7.2f}ms{check}")


def main() -> None:
    print(f"{READINGS:,} readings, {SENSORS} sensors, {DAYS} days; median of {REPEAT}")
    workdir = Path(tempfile.mkdtemp(prefix="telemetra-bench-q-"))
    try:
        if "postgresql" in BACKENDS:
            with pgcluster.throwaway_cluster(durable=True) as cluster:
                url = pgcluster.create_database(cluster.url, "bench_queries")
                started = time.monotonic()
                asyncio.run(load_postgresql(url))
                load_s = time.monotonic() - started
                results = asyncio.run(measure(url, "postgresql"))
                report("PostgreSQL", results, http_latency(url, workdir, "postgresql"), load_s)
        if "sqlite" in BACKENDS:
            path = workdir / "queries.db"
            started = time.monotonic()
            load_sqlite(path)
            load_s = time.monotonic() - started
            url = f"sqlite:///{path}"
            results = asyncio.run(measure(url, "sqlite"))
            report("SQLite", results, http_latency(url, workdir, "sqlite"), load_s)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
