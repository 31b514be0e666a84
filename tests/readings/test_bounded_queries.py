"""Queries that cannot stall the server, on a real `telemetra serve` process (SQLite and
PostgreSQL): the absurd aggregation is refused before any work, a reading planted in year
9999 costs an open range nothing, a query past its time limit is a 503 `query_timeout`, and
/health answers at once beside all of them.

Readings are planted with SQL straight into the database: ingestion refuses such times.
"""

import asyncio
import threading
import time
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import insert, text

from telemetra.db.engine import create_engine
from telemetra.db.tables import readings
from telemetra.ingest.partitions import Partitions
from tests.server import API, Server

HEALTH_BOUND = 1.0  # seconds; a stalled event loop misses it by far (13-22 s before the fix)
BULK_START = datetime(2026, 11, 1, tzinfo=UTC)


def _run(coro):
    return asyncio.run(coro)


async def _plant_one(url: str, sensor_id: int, ts: datetime, value: float) -> None:
    engine = create_engine(url)
    try:
        await Partitions(engine).ensure([(ts.year, ts.month)])
        async with engine.begin() as conn:
            await conn.execute(insert(readings).values(sensor_id=sensor_id, ts=ts, value=value,
                                                       flags=0))
    finally:
        await engine.dispose()


async def _plant_many(url: str, sensor_id: int, count: int) -> None:
    """``count`` readings, one a second from BULK_START."""
    engine = create_engine(url)
    try:
        await Partitions(engine).ensure([(2026, 11), (2026, 12), (2027, 1)])
        async with engine.begin() as conn:
            if engine.dialect.name == "sqlite":  # ts: epoch microseconds
                start = int(BULK_START.timestamp()) * 1_000_000
                await conn.execute(text(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                    "WHERE i < :count) INSERT INTO readings (sensor_id, ts, value, flags) "
                    "SELECT :sensor, :start + i * 1000000, i % 100, 0 FROM n"),
                    {"count": count, "sensor": sensor_id, "start": start})
            else:
                await conn.execute(text(
                    "INSERT INTO readings (sensor_id, ts, value, flags) "
                    "SELECT :sensor, CAST(:start AS timestamptz) + i * interval '1 second', "
                    "i % 100, 0 "
                    "FROM generate_series(1, :count) AS i"),
                    {"count": count, "sensor": sensor_id, "start": BULK_START})
    finally:
        await engine.dispose()


def _device_with_sensor(server: Server, headers: dict) -> tuple[dict, int]:
    device = httpx.post(server.base + API + "/devices", headers=headers,
                        json={"name": "stall"}).json()
    key = {"X-API-Key": device["api_key"]}
    response = httpx.post(server.base + API + "/readings", headers=key,
                          json={"ts": "2026-05-01T00:00:00Z", "values": {"t": 1.0}})
    assert response.status_code == 202, response.text
    sensors = httpx.get(server.base + API + "/sensors", headers=headers,
                        params={"device_id": device["id"]}).json()["items"]
    return device, sensors[0]["id"]


class Beside:
    """Runs a request in a thread and times /health while it runs."""

    def __init__(self, server: Server, headers: dict, path: str, params: dict) -> None:
        self.server, self.result, self.health = server, {}, []
        self.thread = threading.Thread(target=self._request, args=(headers, path, params))

    def _request(self, headers, path, params) -> None:
        started = time.monotonic()
        response = httpx.get(self.server.base + API + path, headers=headers, params=params,
                             timeout=120)
        self.result.update(response=response, seconds=time.monotonic() - started)

    def __enter__(self) -> "Beside":
        self.thread.start()
        time.sleep(0.2)  # the request is under way
        while True:  # /health, timed, for as long as the request runs (at least once)
            started = time.monotonic()
            response = httpx.get(self.server.base + "/health", timeout=120)
            self.health.append((time.monotonic() - started, response.status_code))
            if not self.thread.is_alive() or len(self.health) >= 20:
                return self
            time.sleep(0.1)

    def __exit__(self, *exc) -> None:
        self.thread.join(120)

    @property
    def slowest_health(self) -> float:
        return max(seconds for seconds, _ in self.health)


@pytest.fixture
def server(database_url, tmp_path):
    servers = []

    def start(**settings) -> Server:
        server = Server(database_url, tmp_path / f"server-{len(servers)}.log", **settings)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


def test_an_absurd_aggregation_is_refused_at_once_and_health_answers_beside_it(server):
    server = server()
    headers = server.login()
    device, _ = _device_with_sensor(server, headers)
    params = {"device_id": device["id"], "interval": "1d", "start": "0001-01-01",
              "end": "9999-12-31"}
    with Beside(server, headers, "/readings/aggregate", params) as beside:
        pass
    response = beside.result["response"]
    assert beside.slowest_health < HEALTH_BOUND, beside.health
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert "100,000" in problem["detail"] and "3,652,059" in problem["detail"]
    assert problem["errors"][0]["loc"] == ["query", "interval"]
    assert beside.result["seconds"] < 5


def test_a_reading_planted_in_year_9999_costs_an_open_range_nothing(server, database_url):
    server = server()
    headers = server.login()
    device, sensor_id = _device_with_sensor(server, headers)
    far = datetime(9999, 11, 15, tzinfo=UTC)
    _run(_plant_one(database_url, sensor_id, far, 42.0))
    for interval in ("1d", "1mo", "1h"):
        params = {"device_id": device["id"], "interval": interval, "start": "-1h"}
        with Beside(server, headers, "/readings/aggregate", params) as beside:
            pass
        response = beside.result["response"]
        assert beside.slowest_health < HEALTH_BOUND, (interval, beside.health)
        assert response.status_code == 200, response.text
        assert [item["avg"] for item in response.json()["items"]] == [42.0]
        assert beside.result["seconds"] < 5, (interval, beside.result["seconds"])
    trend = httpx.get(server.base + API + "/analytics/trends", headers=headers,
                      params={"key": "t", "interval": "1d", "start": "-1h"}, timeout=30)
    assert trend.status_code == 200 and len(trend.json()["items"]) == 1


def test_a_query_past_its_time_limit_is_a_503_and_the_server_keeps_serving(server,
                                                                         database_url):
    server = server(query_timeout_seconds="0.2")
    headers = server.login()
    device, sensor_id = _device_with_sensor(server, headers)
    _run(_plant_many(database_url, sensor_id, 1_000_000))
    # A million readings through window functions: far more than 0.2 s of work.
    params = {"device_id": device["id"], "interval": "1m", "fn": "first,last,avg",
              "start": "2026-11-01", "end": "2026-11-30"}
    with Beside(server, headers, "/readings/aggregate", params) as beside:
        pass
    response = beside.result["response"]
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "query_timeout"
    assert "0.2 s" in response.json()["detail"]
    assert beside.slowest_health < HEALTH_BOUND, beside.health
    assert beside.result["seconds"] < 10
    # The connections that were stopped serve the next requests as usual.
    for _ in range(12):
        small = httpx.get(server.base + API + "/readings/aggregate", headers=headers, params={
            "device_id": device["id"], "interval": "1h", "start": "2026-05-01",
            "end": "2026-05-01T01:00:00Z"}, timeout=30)
        assert small.status_code == 200 and small.json()["items"][0]["avg"] == 1.0
    assert httpx.get(server.base + "/health").json()["database"] == "up"


def test_health_answers_while_a_long_query_runs(server, database_url):
    server = server(query_timeout_seconds="60")
    headers = server.login()
    device, sensor_id = _device_with_sensor(server, headers)
    _run(_plant_many(database_url, sensor_id, 1_000_000))
    # Calendar buckets in a zone over a million readings: seconds of database work.
    params = {"device_id": device["id"], "interval": "1d", "tz": "Europe/Brussels",
              "fn": "first,last,avg,count", "start": "2026-10-01", "end": "2027-01-31"}
    with Beside(server, headers, "/readings/aggregate", params) as beside:
        pass
    response = beside.result["response"]
    assert response.status_code == 200, response.text
    assert sum(item["count"] for item in response.json()["items"]) == 1_000_000
    assert len(beside.health) >= 2, "the query was too quick to time /health beside it"
    assert beside.slowest_health < HEALTH_BOUND, beside.health
