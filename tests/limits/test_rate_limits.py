"""Rate limits in one process's memory, each with its own low setting: the 429 names the limit
and its scope, with Retry-After and RateLimit-* headers; ingestion refused is counted for the
device; `off` turns one off."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from telemetra.app import create_app
from telemetra.settings import Settings
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, make_settings
from tests.helpers import Api, device_key


def app_with(database_url: str, **limits) -> TestClient:
    # The peer is 127.0.0.1, as behind a proxy on the same host.
    return TestClient(create_app(make_settings(database_url, **limits)),
                      raise_server_exceptions=False, client=("127.0.0.1", 50000))


@pytest.fixture
def limited(database_url) -> Iterator[Api]:
    with app_with(database_url, rate_limit_ingest="3/minute", rate_limit_api="20/minute",
                  rate_limit_login="10/minute", usage_flush_seconds=0.2) as client:
        yield Api(client)


def assert_rate_limited(response, limit: str, amount: int) -> None:
    assert response.status_code == 429, response.text
    problem = response.json()
    assert problem["code"] == "rate_limited" and limit in problem["detail"]
    assert problem["limit"] == limit
    assert response.headers["content-type"].startswith("application/problem+json")
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["RateLimit-Limit"] == str(amount)
    assert response.headers["RateLimit-Remaining"] == "0"
    assert int(response.headers["RateLimit-Reset"]) >= 1


def test_the_defaults_are_the_documented_ones():
    settings = Settings(_env_file=None)
    assert (settings.rate_limit_ingest, settings.rate_limit_api, settings.rate_limit_login) == (
        "1000/second", "1200/minute", "10/minute")
    with pytest.raises(ValidationError, match="not a rate limit"):
        Settings(_env_file=None, rate_limit_api="lots")


def test_ingestion_per_device_key_on_the_fast_path_and_the_route(limited):
    root = limited.login(ADMIN_USERNAME, ADMIN_PASSWORD)
    device, other = limited.device(root), limited.device(root)
    key = device_key(device["api_key"])
    for value in range(3):
        assert limited.post("/readings", key, json={"t": value}).status_code == 202
    assert_rate_limited(limited.post("/readings", key, json={"t": 9}),
                        "device key: 3 per minute", 3)
    # the routed path (a query string) counts the same key
    assert_rate_limited(limited.post("/readings", key, params={"device_id": device["id"]},
                                     json={"t": 9}), "device key: 3 per minute", 3)
    # another device has its own count
    assert limited.post("/readings", device_key(other["api_key"]),
                        json={"t": 1}).status_code == 202
    # what was refused is counted for the device, so a user sees why data is missing
    rejected = limited.get("/organizations/me/usage", root).json()["rejected_today"]
    assert rejected["rate_limited"] == 2
    assert rejected["by_device"] == [{"device_id": device["id"], "rate_limited": 2,
                                      "quota_exceeded": 0}]


def test_the_api_per_user(database_url):
    with app_with(database_url, rate_limit_api="5/minute") as client:
        api = Api(client)
        root = api.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        _, member = api.add_user(root, "member")  # 1 call of root's
        for _ in range(4):
            assert api.get("/devices", root).status_code == 200
        assert_rate_limited(api.get("/devices", root), "user: 5 per minute", 5)
        assert api.get("/devices", member).status_code == 200  # another user: its own


def test_login_per_client_address(database_url):
    with app_with(database_url, rate_limit_login="3/minute") as client:
        api = Api(client)
        # failed attempts count as much as good ones
        for username in ("a", "b", ADMIN_USERNAME):
            api.post("/auth/login", json={"username": username, "password": "wrong-password"})
        # X-Forwarded-For is not believed without TELEMETRA_TRUSTED_PROXIES
        assert_rate_limited(api.post("/auth/login", json={"username": ADMIN_USERNAME,
                                                          "password": ADMIN_PASSWORD},
                                     headers={"X-Forwarded-For": "203.0.113.9"}),
                            "client address: 3 per minute", 3)
        assert_rate_limited(api.post("/auth/signup", json={"username": "newcomer",
                                                           "password": "password-123"}),
                            "client address: 3 per minute", 3)


def test_login_per_username_from_many_addresses(database_url):
    with app_with(database_url, rate_limit_login="3/minute",
                  trusted_proxies="127.0.0.0/8") as client:
        api = Api(client)
        for n in range(3):
            api.post("/auth/login", json={"username": "victim", "password": f"guess-{n}"},
                     headers={"X-Forwarded-For": f"203.0.113.{n}"})
        assert_rate_limited(api.post("/auth/login", json={"username": "Victim",
                                                          "password": "guess"},
                                     headers={"X-Forwarded-For": "203.0.113.50"}),
                            "username: 3 per minute", 3)
        # another username from another address is not held back
        assert api.post("/auth/login", json={"username": ADMIN_USERNAME,
                                             "password": ADMIN_PASSWORD},
                        headers={"X-Forwarded-For": "198.51.100.7"}).status_code == 200


def test_off_turns_a_limit_off(database_url):
    with app_with(database_url, rate_limit_login="off", rate_limit_api="off") as client:
        api = Api(client)
        for _ in range(25):
            assert api.post("/auth/login", json={"username": ADMIN_USERNAME,
                                                 "password": ADMIN_PASSWORD}).status_code == 200


def test_memory_windows_reset_on_the_period_and_forget_old_identities():
    from limits import parse

    from telemetra.kit.ratelimit import Windows

    now = [1000.5]
    windows = Windows(clock=lambda: now[0])
    item = parse("2/second")
    assert windows.hit(item, "device key", "7") is None
    assert windows.hit(item, "device key", "7") is None
    assert windows.hit(item, "device key", "7") == (0, 1001.0)  # refused until the second ends
    assert windows.hit(item, "device key", "8") is None  # another key has its own window
    now[0] = 1001.0
    assert windows.hit(item, "device key", "7") is None  # a new window
    now[0] = 1010.0
    windows.hit(item, "device key", "9")
    assert list(windows._counts) == [("device key", "9")]  # past windows swept
