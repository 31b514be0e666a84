"""Limits across real `telemetra serve` processes: concurrent creations at a count's edge,
the daily quota seen by another process, rate limits shared through Redis, and client
addresses from X-Forwarded-For only behind a trusted proxy."""

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import ADMIN_USERNAME
from tests.redis_server import RedisServer
from tests.server import API, Server


def eventually(check, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not met in {timeout} s (last: {value!r})")
        time.sleep(0.05)
    return value


@pytest.fixture
def servers(database_url, tmp_path):
    started: list[Server] = []

    def start(workers: int = 1, **settings) -> Server:
        server = Server(database_url, tmp_path / f"server{len(started)}.log", workers=workers,
                        **settings)
        server.start(timeout=120)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def set_plan(server: Server, headers: dict, **body) -> None:
    org = httpx.get(server.base + API + "/organizations/me", headers=headers).json()
    response = httpx.put(server.base + API + f"/admin/organizations/{org['id']}/plan",
                         headers=headers, json=body)
    assert response.status_code == 200, response.text


def test_concurrent_creations_at_the_edge_pass_one_at_a_time(servers):
    server = servers(workers=2)
    headers = server.login()
    set_plan(server, headers, plan="pro", max_devices=3)
    httpx.post(server.base + API + "/devices", headers=headers, json={"name": "first"})

    def create(n: int) -> int:
        return httpx.post(server.base + API + "/devices", headers=headers,
                          json={"name": f"racer-{n}"}, timeout=30).status_code

    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(create, range(12)))
    assert sorted(statuses).count(201) == 2 and statuses.count(409) == 10
    total = httpx.get(server.base + API + "/devices", headers=headers).json()["total"]
    assert total == 3


def test_another_process_sees_the_days_readings(servers):
    plans = '{"small": {"readings_per_day": 10}}'
    first = servers(plans=plans, usage_flush_seconds="0.1")
    second = servers(plans=plans, usage_flush_seconds="0.1")
    headers = first.login()
    set_plan(first, headers, plan="small")
    device = httpx.post(first.base + API + "/devices", headers=headers,
                        json={"name": "shared"}).json()
    key = {"X-API-Key": device["api_key"]}
    body = {f"k{i}": i for i in range(6)}
    assert httpx.post(first.base + API + "/readings", headers=key, json=body).status_code == 202
    usage = second.base + API + "/organizations/me/usage"
    eventually(lambda: httpx.get(usage, headers=headers).json()["readings_today"] == 6)
    # The second process counts the first's 6: 6 more would pass 10, 4 do not.
    # (It reads the shared total at each flush: give it one after the count arrived.)
    time.sleep(0.5)
    refused = httpx.post(second.base + API + "/readings", headers=key, json=body)
    assert refused.status_code == 429 and refused.json()["code"] == "quota_exceeded"
    four = {f"k{i}": i for i in range(4)}
    assert httpx.post(second.base + API + "/readings", headers=key,
                      json=four).status_code == 202


def test_rate_limits_are_shared_through_redis(servers, tmp_path):
    redis = RedisServer(tmp_path / "redis").start()
    try:
        settings = {"redis_url": redis.url, "rate_limit_login": "4/minute"}
        first, second = servers(**settings), servers(**settings)
        attempt = {"username": ADMIN_USERNAME, "password": "wrong-password"}
        statuses = [httpx.post(server.base + API + "/auth/login", json=attempt).status_code
                    for server in (first, second, first, second, first, second)]
        assert statuses[:4] == [401] * 4 and statuses[4:] == [429, 429]
    finally:
        redis.stop()


def test_forwarded_addresses_only_behind_trusted_proxies(servers):
    trusting = servers(rate_limit_login="2/minute", trusted_proxies="127.0.0.1")

    def login(server: Server, username: str, address: str) -> int:
        return httpx.post(server.base + API + "/auth/login",
                          json={"username": username, "password": "wrong-password"},
                          headers={"X-Forwarded-For": f"{address}, 127.0.0.1"}).status_code

    assert [login(trusting, f"user{n}", "203.0.113.1") for n in range(3)] == [401, 401, 429]
    assert login(trusting, "user9", "203.0.113.2") == 401  # another client: its own count
    plain = servers(rate_limit_login="2/minute")
    assert [login(plain, f"user{n}", f"203.0.113.{n}") for n in range(3)] == [401, 401, 429]
