"""The ingestion rules users trip over (issue 10), over HTTP: a body in which nothing can be
stored is a 422 carrying the rejections on every path; readings by sensor id (body 7) store to
that sensor of the caller's device only; the formats' field names never become sensors."""

import time

import pytest

from tests.helpers import device_key, eventually

T = 1767268800  # 2026-01-01T12:00:00Z


def sensors_of(api, root, device) -> dict[str, dict]:
    items = api.get("/sensors", root, params={"device_id": device["id"], "limit": 1000}).json()
    return {s["key"]: s for s in items["items"]}


def stored(api, root, **params) -> list[tuple]:
    items = api.get("/readings", root, params={"include_invalid": True, "order": "asc",
                                               "limit": 1000, **params}).json()["items"]
    return [(r["sensor_id"], r["key"], r["value"], r["valid"]) for r in items]


def paths(api, root, device, key):
    """Every HTTP way in: the route (a device's first request, a member naming the device, the
    device in the path) and the fast path (a device key this process has verified)."""
    _, member = api.add_user(root, "member")
    assert api.post("/readings", key, json={"ts": T - 1, "values": {"warmup": 0}}
                    ).status_code == 202  # the key is now verified: the fast path takes it
    return {
        "fast path": lambda body: api.post("/readings", key, json=body),
        "fast path, device in the path": lambda body: api.post(
            f"/devices/{device['id']}/readings", key, json=body),
        "route, member": lambda body: api.post("/readings", member,
                                               params={"device_id": device["id"]}, json=body),
        "route, member, device in the path": lambda body: api.post(
            f"/devices/{device['id']}/readings", member, json=body),
    }


@pytest.mark.parametrize("body, reason", [
    ({"value": 3, "unit": "C"}, "'value' is a field name of the formats, not a sensor key"),
    ({"readings": [{"key": "t", "value": "hot"}]}, "string value"),
    ({"ts": "2099-01-01T00:00:00Z", "values": {"t": 1}}, "in the future"),
    ({"sensor_id": 999_999, "value": 1}, "sensor 999999 not found on this device"),
])
def test_nothing_storable_is_a_422_with_the_rejections_on_every_http_path(
        api, root, device, key, body, reason):
    for name, send in paths(api, root, device, key).items():
        response = send(body)
        assert response.status_code == 422, (name, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert reason in problem["detail"], name
        assert reason in [r["reason"] for r in problem["rejected"]], name
    assert set(sensors_of(api, root, device)) == {"warmup"}


def test_field_names_never_become_sensors_the_rest_is_stored(api, root, device, key):
    response = api.post("/readings", key, json={"temperature": 21.5, "status": 1, "ts": T})
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 1
    assert [(r["index"], r["key"]) for r in response.json()["rejected"]] == [(1, "status"),
                                                                              (2, "ts")]
    assert set(sensors_of(api, root, device)) == {"temperature"}


def test_readings_by_sensor_id_store_to_that_sensor_and_create_none(api, root, device, key):
    sensor = api.post("/sensors", root, json={"device_id": device["id"], "key": "t",
                                              "valid_max": 50}).json()
    for send in paths(api, root, device, key).values():
        assert send({"sensor_id": sensor["id"], "value": 1}).status_code == 202
    body = {"sensor_id": sensor["id"], "value": 22.5, "unit": "C", "status": "pending",
            "ts": T}
    response = api.post("/readings", key, json=body)
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    response = api.post("/readings", key, json=[
        {"sensor_id": sensor["id"], "value": 99, "timestamp": T + 1},
        {"sensor_id": sensor["id"], "value": 23, "ts": T + 2, "tags": ["suspect"]}])
    assert response.json()["accepted"] == 2
    assert set(sensors_of(api, root, device)) == {"t", "warmup"}
    timed = [r for r in stored(api, root, sensor_id=sensor["id"]) if r[2] != 1.0]
    assert timed == [(sensor["id"], "t", 22.5, True), (sensor["id"], "t", 99.0, False),
                     (sensor["id"], "t", 23.0, False)]


def test_a_sensor_id_of_another_device_or_organization_is_rejected_never_written(
        api, root, device, key):
    mine = api.post("/sensors", root, json={"device_id": device["id"], "key": "t"}).json()
    other_device = api.device(root)
    theirs = api.post("/sensors", root, json={"device_id": other_device["id"],
                                              "key": "t"}).json()
    response = api.post("/readings", key, json=[
        {"sensor_id": mine["id"], "value": 1, "ts": T},
        {"sensor_id": theirs["id"], "value": 2, "ts": T}])
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 1
    assert response.json()["rejected"] == [
        {"index": 1, "reason": f"sensor {theirs['id']} not found on this device"}]
    assert stored(api, root, sensor_id=theirs["id"]) == []
    # Alone, nothing of the body can be stored: a 422, from either device's key.
    other_key = device_key(other_device["api_key"])
    refused = api.post("/readings", other_key, json={"sensor_id": mine["id"], "value": 3})
    assert refused.status_code == 422
    assert stored(api, root, sensor_id=mine["id"]) == [(mine["id"], "t", 1.0, True)]


def test_a_sensor_id_of_another_organization_is_rejected(two_tenants):
    api, root, other = two_tenants["api"], two_tenants["root"], two_tenants["other"]
    their_device = api.device(other)
    theirs = api.post("/sensors", other, json={"device_id": their_device["id"],
                                               "key": "x"}).json()
    key = device_key(two_tenants["device"]["api_key"])
    response = api.post("/readings", key, json={"sensor_id": theirs["id"], "value": 5})
    assert response.status_code == 422
    assert api.get("/readings", other, params={"sensor_id": theirs["id"]}).json()["items"] == []
    assert api.get("/readings", root, params={"device_id": two_tenants["device"]["id"]}
                   ).json()["items"][0]["value"] == 1.0  # the fixture's only reading


def test_a_user_sends_readings_by_sensor_id_without_naming_the_device(two_tenants):
    api, root, other = two_tenants["api"], two_tenants["root"], two_tenants["other"]
    device = two_tenants["device"]
    mine = api.post("/sensors", root, json={"device_id": device["id"], "key": "m"}).json()
    second = api.post("/sensors", root, json={"device_id": api.device(root)["id"],
                                              "key": "m"}).json()
    response = api.post("/readings", root, json=[{"sensor_id": mine["id"], "value": 4,
                                                  "ts": T}])
    assert response.status_code == 202, response.text
    assert stored(api, root, sensor_id=mine["id"]) == [(mine["id"], "m", 4.0, True)]
    several = api.post("/readings", root, json=[{"sensor_id": mine["id"], "value": 5},
                                                {"sensor_id": second["id"], "value": 5}])
    assert several.status_code == 422 and "several devices" in several.json()["detail"]
    their_device = api.device(other)
    theirs = api.post("/sensors", other, json={"device_id": their_device["id"],
                                               "key": "x"}).json()
    assert api.post("/readings", root, json={"sensor_id": theirs["id"], "value": 1}
                    ).status_code == 404
    assert api.get("/readings", other, params={"sensor_id": theirs["id"]}).json()["items"] == []
    keys = api.post("/readings", root, json={"t": 1})
    assert keys.status_code == 422 and "device_id is required" in keys.json()["detail"]


def test_an_unknown_field_is_a_422_naming_it_on_every_http_path(api, root, device, key):
    """Strict input: ``timestmap`` must not silently mean "now"."""
    for name, send in paths(api, root, device, key).items():
        response = send({"sensor_type": "temperature", "value": 21.5, "timestmap": T})
        assert response.status_code == 422, (name, response.text)
        problem = response.json()
        assert problem["detail"].startswith("unknown field 'timestmap'"), name
        assert problem["errors"][0]["loc"] == ["body", "timestmap"], name
    assert set(sensors_of(api, root, device)) == {"warmup"}


def test_a_listed_reading_with_an_unknown_field_is_rejected_alone(api, root, device, key):
    response = api.post("/readings", key, json=[
        {"sensor_type": "temperature", "value": 21.5, "ts": T},
        {"sensor_type": "humidity", "value": 40, "ts": T, "units": "%"}])
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["accepted"] == 1
    assert [r["index"] for r in answer["rejected"]] == [1]
    assert answer["rejected"][0]["reason"].startswith("unknown field 'units'")
    assert set(sensors_of(api, root, device)) == {"temperature"}


def _status(api, root, device) -> dict:
    return api.get(f"/devices/{device['id']}/status", root).json()


def test_readings_sent_with_the_device_key_are_contact_a_users_are_not(api, root, device, key):
    """A device that only posts readings (no heartbeat) is online, with its last_seen, as one
    publishing over MQTT is (written once a second)."""
    other = api.device(root)
    assert api.post("/readings", root, params={"device_id": other["id"]},
                    json={"ts": T, "values": {"t": 1}}).status_code == 202
    assert _status(api, root, device)["online"] is False
    for _ in range(2):  # the route, then the fast path
        assert api.post("/readings", key, json={"temperature": 21.5}).status_code == 202
    eventually(lambda: _status(api, root, device)["online"], timeout=5)
    assert _status(api, root, device)["last_seen"] is not None
    time.sleep(1.5)  # a presence flush has run since the user's readings
    assert _status(api, root, other)["online"] is False
