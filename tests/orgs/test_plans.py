"""Plans and quotas at their edges, on both backends: counts (409), the daily readings quota on
every ingestion path (429 until midnight UTC), retention capped, usage against the limits."""

import io
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from telemetra.app import create_app
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, make_settings
from tests.helpers import Api, device_key

PLANS = {"tiny": {"devices": 2, "readings_per_day": 5, "retention_days": 7, "alert_rules": 1}}


@pytest.fixture
def api(database_url) -> Iterator[Api]:
    settings = make_settings(database_url, plans=PLANS, usage_flush_seconds=0.2)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield Api(client)


def on_plan(api: Api, root, plan: str) -> dict:
    """The caller's organization, put on ``plan``."""
    org = api.get("/organizations/me", root).json()
    response = api.put(f"/admin/organizations/{org['id']}/plan", root, json={"plan": plan})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def tiny(api, root) -> dict:
    """The default organization, put on the tiny plan."""
    return on_plan(api, root, "tiny")


def rule(name: str) -> dict:
    return {"name": name, "key": "t", "condition": "gt", "threshold": 1, "severity": "info"}


def test_an_unknown_plan_is_422_naming_the_plans(api, root):
    org = api.get("/organizations/me", root).json()
    response = api.put(f"/admin/organizations/{org['id']}/plan", root, json={"plan": "gold"})
    assert response.status_code == 422
    assert "gold" in response.json()["detail"] and "tiny" in response.json()["detail"]
    assert api.get("/organizations/me", root).json()["plan"] == "unlimited"  # the default


def test_device_and_rule_counts_stop_at_the_plan(api, root, tiny):
    api.device(root)
    api.device(root)
    refused = api.post("/devices", root, json={"name": "third"})
    assert refused.status_code == 409 and refused.json()["code"] == "quota_exceeded"
    assert "2 devices" in refused.json()["detail"] and refused.json()["limit"] == "max_devices"
    assert api.post("/alert-rules", root, json=rule("first")).status_code == 201
    refused = api.post("/alert-rules", root, json=rule("second"))
    assert refused.status_code == 409 and refused.json()["limit"] == "max_alert_rules"
    usage = api.get("/organizations/me/usage", root).json()
    assert (usage["devices"], usage["max_devices"]) == (2, 2)
    assert (usage["alert_rules"], usage["max_alert_rules"]) == (1, 1)
    # Back to a bigger plan: room again.
    api.put(f"/admin/organizations/{tiny['id']}/plan", root, json={"plan": "pro"})
    assert api.post("/devices", root, json={"name": "third"}).status_code == 201


def test_retention_is_capped_at_the_plan(api, root, tiny):
    assert tiny["retention_days"] == 7  # 365 before: cut to the plan's
    response = api.patch("/organizations/me", root, json={"retention_days": 30})
    assert response.status_code == 422 and "7 days" in response.json()["detail"]
    assert api.patch("/organizations/me", root, json={"retention_days": 3}).status_code == 200
    assert api.get("/organizations/me/usage", root).json()["max_retention_days"] == 7


def test_the_daily_readings_quota_on_every_http_path(api, root, tiny):
    device = api.device(root)
    key = device_key(device["api_key"])
    # The fast path (a device key, no query string): 3 of 5.
    assert api.post("/readings", key, json={"a": 1, "b": 2, "c": 3}).status_code == 202
    # A body that would pass the quota is refused whole, until midnight UTC.
    refused = api.post("/readings", key, json={"d": 1, "e": 2, "f": 3})
    assert refused.status_code == 429 and refused.json()["code"] == "quota_exceeded"
    assert "allows 5 readings a day" in refused.json()["detail"]
    midnight = 86_400 - time.time() % 86_400
    assert 1 <= int(refused.headers["Retry-After"]) <= midnight + 1
    # Exactly to the edge: accepted; past it, nothing more on any path.
    assert api.post(f"/devices/{device['id']}/readings", key,
                    json={"d": 1, "e": 2}).status_code == 202
    for response in (
        api.post("/readings", key, json={"g": 1}),  # fast path
        api.post("/readings", key, params={"device_id": device["id"]}, json={"g": 1}),  # route
        api.post("/readings", root, params={"device_id": device["id"]}, json={"g": 1}),  # user
        api.post("/readings/import", root, params={"device_id": device["id"]},
                 files={"file": ("r.csv", io.BytesIO(b"key,ts,value\ng,1767268800,1\n"))}),
    ):
        assert response.status_code == 429, response.text
        assert response.json()["code"] == "quota_exceeded" and "Retry-After" in response.headers
    # Duplicates were never stored: the quota counts what is stored.
    usage = api.get("/organizations/me/usage", root).json()
    assert usage["readings_today"] == 5 and usage["max_readings_per_day"] == 5
    assert usage["rejected_today"]["quota_exceeded"] >= 4
    assert usage["rejected_today"]["by_device"][0]["device_id"] == device["id"]


def test_usage_survives_a_restart(database_url):
    """Counts are flushed to the table: a new process knows today's total."""
    settings = make_settings(database_url, plans=PLANS, usage_flush_seconds=30)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        api = Api(client)
        root = api.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        on_plan(api, root, "tiny")
        device = api.device(root)
        assert api.post("/readings", device_key(device["api_key"]),
                        json={"a": 1, "b": 2, "c": 3, "d": 4}).status_code == 202
    # The first process flushed at its shutdown; the second counts on from 4.
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        api = Api(client)
        root = api.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        key = device_key(device["api_key"])
        assert api.get("/organizations/me/usage", root).json()["readings_today"] == 4
        assert api.post("/readings", key, json={"x": 1, "y": 2}).status_code == 429
        assert api.post("/readings", key, json={"x": 1}).status_code == 202


def test_a_bad_plan_table_stops_start_up(database_url):
    with pytest.raises(ValueError, match="speed"):
        create_app(make_settings(database_url, plans={"team": {"speed": 3}}))
    with pytest.raises(ValueError, match="TELEMETRA_DEFAULT_PLAN"):
        create_app(make_settings(database_url, default_plan="gold"))


def test_new_organizations_get_the_default_plan(database_url):
    settings = make_settings(database_url, plans=PLANS, default_plan="tiny",
                             signup_mode="tenant")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        api = Api(client)
        _, owner = api.signup_tenant_owner()
        org = api.get("/organizations/me", owner).json()
        assert org["plan"] == "tiny" and org["retention_days"] == 7
        api.device(owner)
        api.device(owner)
        assert api.post("/devices", owner, json={"name": "x"}).status_code == 409
        # Each organization has its own daily count.
        for _ in range(2):
            _, owner = api.signup_tenant_owner()
            device = api.device(owner)
            assert api.post("/readings", device_key(device["api_key"]),
                            json={"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}).status_code == 202


def test_usage_counts_each_reading_once_while_flushes_run(database_url):
    """A flush adds this process's counts to the table while usage is read: each answer has
    every reading stored so far exactly once (it said 4 of 3 when a read fell between a
    flush's commit and its bookkeeping)."""
    plans = {"roomy": {"readings_per_day": 10_000}}
    settings = make_settings(database_url, plans=plans, usage_flush_seconds=0.01)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        api = Api(client)
        root = api.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        on_plan(api, root, "roomy")
        key = device_key(api.device(root)["api_key"])
        seen = []
        for n in range(1, 61):
            assert api.post("/readings", key, json={f"k{n}": n}).status_code == 202
            for _ in range(3):
                seen.append((n, api.get("/organizations/me/usage", root).json()["readings_today"]))
        assert [s for s in seen if s[0] != s[1]] == []
