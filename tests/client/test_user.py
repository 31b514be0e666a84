"""``UserClient`` against a real server: login, refresh-token rotation, queries, aggregates,
exports to a file."""

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from telemetra.client import ApiError, DeviceClient, UserClient
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME

T0 = datetime(2026, 1, 1, 0, tzinfo=UTC)


@pytest.fixture
def filled(server, device):
    """Two hours of a temperature and a humidity reading a minute."""
    with DeviceClient(server.base, device.id, device.api_key) as client:
        for n in range(120):
            client.record({"temperature": n, "humidity": 50}, ts=T0 + timedelta(minutes=n))
        assert client.flush().accepted == 240
    return device


def test_login_refresh_rotates_the_refresh_token(server):
    with UserClient(server.base) as api:
        first = api.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        assert api.me()["username"] == ADMIN_USERNAME
        second = api.refresh()
        assert second.refresh_token != first.refresh_token
        assert second.access_token != first.access_token
        spent = httpx.post(api.base + "/auth/refresh",
                           json={"refresh_token": first.refresh_token})
        assert spent.status_code == 401  # spent, and its reuse revoked the family ...
        with pytest.raises(ApiError) as raised:
            api.me()
        assert raised.value.status == 401  # ... this session's pair with it


def test_an_access_token_about_to_expire_is_refreshed_before_the_request(server):
    with UserClient(server.base) as api:
        first = api.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        api._expires_at = 0  # as if expires_in had passed
        assert api.me()["username"] == ADMIN_USERNAME
        assert api.tokens.refresh_token != first.refresh_token
        assert api.me()["username"] == ADMIN_USERNAME  # no second refresh needed


def test_a_wrong_password_is_an_api_error_naming_it(server):
    with UserClient(server.base) as api, pytest.raises(ApiError) as raised:
        api.login(ADMIN_USERNAME, "not-the-password")
    assert raised.value.status == 401 and raised.value.code == "unauthorized"


def test_readings_are_paged_through_by_cursor(admin, filled):
    readings = list(admin.readings(device_id=filled.id, keys=["temperature"], page_size=7))
    assert [r.value for r in readings] == list(range(120))
    assert readings[0].ts == T0
    newest = list(admin.readings(device_id=filled.id, keys="temperature", order="desc",
                                 start=T0 + timedelta(minutes=100), limit=5))
    assert [r.value for r in newest] == [119, 118, 117, 116, 115]


def test_latest_and_aggregate(admin, filled):
    latest = {r.key: r for r in admin.latest(device_id=filled.id)}
    assert latest["temperature"].value == 119
    assert latest["temperature"].ts == T0 + timedelta(minutes=119)
    rows = admin.aggregate("1h", fn=["avg", "max", "count"], device_id=filled.id,
                           keys=["temperature"], start=T0, end=T0 + timedelta(hours=2))
    assert [(r.bucket, r.avg, r.max, r.count) for r in rows] == [
        (T0, 29.5, 59, 60), (T0 + timedelta(hours=1), 89.5, 119, 60)]
    assert rows[0].min is None  # not asked for


def test_export_to_a_file(admin, filled, tmp_path):
    csv_path = tmp_path / "out.csv"
    written = admin.export(csv_path, device_id=filled.id, start=T0, end="now")
    lines = csv_path.read_text().splitlines()
    assert written == csv_path.stat().st_size
    assert len(lines) == 241 and "ts" in lines[0]
    ndjson = tmp_path / "out.ndjson"
    admin.export(ndjson, format="ndjson", device_id=filled.id, keys=["humidity"],
                 start=T0.timestamp(), end=T0 + timedelta(hours=3))
    rows = [json.loads(line) for line in ndjson.read_text().splitlines()]
    assert len(rows) == 120 and {r["value"] for r in rows} == {50}


def test_an_export_refused_leaves_no_file(admin, filled, tmp_path):
    target = tmp_path / "nothing.csv"
    with pytest.raises(ApiError) as raised:
        admin.export(target, device_id=filled.id, format="xml")
    assert raised.value.status == 422
    assert list(tmp_path.iterdir()) == []
