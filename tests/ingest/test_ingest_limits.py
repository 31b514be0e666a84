"""What one body may make the platform store (issue 9): times, NUL characters, meta, and how
many sensors a request may create and a device may have. Over HTTP, in process."""

import pytest
from fastapi.testclient import TestClient

from telemetra.app import create_app
from telemetra.kit.timeutil import utcnow
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, make_settings
from tests.helpers import Api, device_key

T = 1767268800  # 2026-01-01T12:00:00Z


def nested(levels: int) -> dict:
    meta: dict = {"leaf": 1}
    for _ in range(levels - 1):
        meta = {"a": meta}
    return meta


def sensor_keys(api, root, device) -> set[str]:
    response = api.get("/sensors", root, params={"device_id": device["id"], "limit": 1000})
    return {s["key"] for s in response.json()["items"]}


def test_a_reading_from_2099_is_rejected_and_never_becomes_the_latest(api, root, device, key):
    response = api.post("/readings", key, json={"readings": [
        {"key": "t", "value": 1, "ts": T}, {"key": "t", "value": 99, "ts": "2099-01-01"}]})
    assert response.status_code == 202
    assert response.json()["rejected"] == [{"index": 1, "reason": "in the future", "key": "t"}]
    latest = api.get("/readings/latest", root, params={"device_id": device["id"]}).json()
    assert [r["value"] for r in latest["items"]] == [1.0]


@pytest.mark.parametrize("body, reason", [
    ({"ts": "0001-01-01T00:00:00Z", "values": {"t": 1}}, "before 1970-01-01T00:00:00Z"),
    ({"ts": "9999-12-31T23:59:59Z", "values": {"t": 1}}, "in the future"),
    ({"readings": [{"key": "t", "value": 1, "tags": ["\u0000"]}]}, "NUL character in a tag"),
    ({"data": {"t": 1}, "metadata": nested(17)},
     "metadata nested deeper than 16 levels"),
])
def test_a_body_none_of_whose_readings_can_be_stored_is_a_422_naming_why(api, key, body,
                                                                       reason):
    response = api.post("/readings", key, json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert reason in problem["detail"]
    assert problem["rejected"] == [{"index": 0, "reason": reason, "key": "t"}]


def test_one_request_creates_at_most_100_sensors_the_rest_rejected_per_reading(
        api, root, device, key):
    api.post("/readings", key, json={"ts": T, "values": {"known": 1}})
    values = {"known": 2, **{f"k{i:03d}": i for i in range(150)}}
    response = api.post("/readings", key, json={"ts": T + 1, "values": values})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 101  # the known key and the first 100 new ones
    assert body["rejected"] == [
        {"index": 101 + i, "key": f"k{100 + i:03d}",
         "reason": "too many new sensors in one request (at most 100)"} for i in range(50)]
    assert sensor_keys(api, root, device) == {"known", *(f"k{i:03d}" for i in range(100))}
    # the next request creates the next ones
    again = api.post("/readings", key, json={"ts": T + 2, "values": values}).json()
    assert again["accepted"] == 151 and again["rejected"] == []


@pytest.fixture
def small_devices(database_url):
    settings = make_settings(database_url, max_sensors_per_device=5,
                             max_new_sensors_per_request=2)
    with TestClient(create_app(settings)) as client:
        api = Api(client)
        yield api, api.login(ADMIN_USERNAME, ADMIN_PASSWORD)


def test_a_device_has_at_most_its_setting_of_sensors(small_devices):
    api, root = small_devices
    device = api.device(root)
    key = device_key(device["api_key"])
    assert api.post("/readings", key, json={"ts": T, "values": {"a": 1, "b": 2}}
                    ).json()["accepted"] == 2
    # decoder rejections and cap rejections keep their places in the body
    response = api.post("/readings", key, json={"readings": [
        {"key": "c", "value": 1}, {"key": "x", "value": "hot"}, {"key": "d", "value": 1},
        {"key": "a", "value": 3}, {"key": "e", "value": 1}, {"key": "f", "value": 1}]})
    assert response.status_code == 202
    assert response.json()["rejected"] == [
        {"index": 1, "reason": "string value", "key": "x"},
        {"index": 4, "reason": "too many new sensors in one request (at most 2)", "key": "e"},
        {"index": 5, "reason": "the device has the most sensors it may have (5)", "key": "f"}]
    assert sensor_keys(api, root, device) == {"a", "b", "c", "d"}
    assert api.post("/readings", key, json={"e": 1}).json()["accepted"] == 1
    full = api.post("/readings", key, json={"g": 1, "a": 5})
    assert full.status_code == 202 and full.json()["accepted"] == 1
    assert full.json()["rejected"][0]["reason"] == (
        "the device has the most sensors it may have (5)")
    # users creating sensors meet the same cap; another device has its own room
    by_hand = api.post("/sensors", root, json={"device_id": device["id"], "key": "h"})
    assert by_hand.status_code == 403 and by_hand.json()["code"] == "quota_exceeded"
    other = api.device(root)
    assert api.post("/sensors", root, json={"device_id": other["id"], "key": "h"}
                    ).status_code == 201


def test_many_unknown_keys_are_looked_up_without_one_parameter_each(api, root, device, key):
    """Past 32,767 keys a lookup by key list was a statement PostgreSQL's driver refuses (a
    503 every time) and SQLite's parameter limit too."""
    values = {f"k{i}": 1 for i in range(40_000)}
    response = api.post("/readings", key, json={"ts": T, "values": values})
    assert response.status_code == 202, response.text[:500]
    assert response.json()["accepted"] == 100
    assert len(response.json()["rejected"]) == 39_900
    assert len(sensor_keys(api, root, device)) == 100


def test_min_reading_time_and_max_future_are_settings(database_url):
    settings = make_settings(database_url, min_reading_time="2020-01-01",
                             max_future_seconds=3600)
    with TestClient(create_app(settings)) as client:
        api = Api(client)
        device = api.device(api.login(ADMIN_USERNAME, ADMIN_PASSWORD))
        soon = int(utcnow().timestamp()) + 1800
        response = api.post("/readings", device_key(device["api_key"]), json={"readings": [
            {"key": "t", "value": 1, "ts": "2019-12-31T23:59:59Z"},
            {"key": "t", "value": 2, "ts": soon}]})
        assert response.status_code == 202
        assert response.json()["rejected"] == [
            {"index": 0, "reason": "before 2020-01-01T00:00:00Z", "key": "t"}]


def test_an_import_meets_the_same_rules_line_by_line(api, root, device):
    """Imported lines are built past the decoder: the same rules still hold, reported by line,
    and the good lines are stored."""
    import json

    lines = [{"key": "t", "ts": T, "value": 1},
             {"key": "t", "ts": "9999-12-31T00:00:00Z", "value": 2},
             {"key": "t", "ts": "0001-01-01T00:00:00Z", "value": 3},
             {"key": "t", "ts": T + 1, "value": 4, "tags": ["a\u0000"]},
             {"key": "bad key!", "ts": T + 2, "value": 5},
             {"key": "t", "ts": T + 3, "value": 6}]
    body = "\n".join(json.dumps({"device_id": device["id"], **line}) for line in lines)
    response = api.post("/readings/import", {**root, "Content-Type": "application/x-ndjson"},
                        content=body.encode())
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["accepted"] == 2
    assert [(r["index"], r["reason"].split(":")[0]) for r in result["rejected"]] == [
        (2, "in the future"), (3, "before 1970-01-01T00"),
        (4, "NUL character in a tag"), (5, "invalid key")]
