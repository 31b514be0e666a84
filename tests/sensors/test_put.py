"""PUT /sensors/{id} replaces the sensor (API.md, "Updates"): its device and key say which
sensor it is and never change; the rest is replaced, and ingestion sees it at once."""

import time

import pytest

from tests.helpers import unique


@pytest.fixture
def sensor(tenants) -> dict:
    device = tenants.api.device(tenants.owner)
    response = tenants.api.post("/sensors", tenants.owner, json={
        "device_id": device["id"], "key": unique("temp"), "type": "temperature", "unit": "°C",
        "name": "Boiler", "valid_min": 0, "valid_max": 100, "status": "maintenance"})
    assert response.status_code == 201, response.text
    return response.json()


def _replace(tenants, sensor: dict, headers=None, **fields):
    return tenants.api.put(f"/sensors/{sensor['id']}", headers or tenants.owner,
                           json={"device_id": sensor["device_id"], "key": sensor["key"],
                                 **fields})


def test_put_replaces_the_sensor_and_resets_what_is_left_out(tenants, sensor):
    replaced = _replace(tenants, sensor, unit="K")
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert body["unit"] == "K" and (body["id"], body["key"]) == (sensor["id"], sensor["key"])
    assert body["type"] == "other" and body["status"] == "active"  # their defaults
    assert body["name"] is None and body["valid_min"] is None and body["valid_max"] is None
    assert tenants.api.get(f"/sensors/{sensor['id']}", tenants.owner).json() == body


def test_ingestion_judges_readings_by_the_replaced_range_at_once(tenants, sensor):
    path = f"/devices/{sensor['device_id']}/readings"
    sent = tenants.api.post(path, tenants.owner, json={sensor["key"]: 50})
    assert sent.status_code == 202 and sent.json()["accepted"] == 1  # caches the sensor
    assert _replace(tenants, sensor, valid_max=10).status_code == 200
    when = int(time.time()) - 60
    sent = tenants.api.post(path, tenants.owner, json={"ts": when,
                                                       "values": {sensor["key"]: 50}})
    assert sent.status_code == 202 and sent.json()["accepted"] == 1
    stored = tenants.api.get("/readings", tenants.owner, params={
        "sensor_id": sensor["id"], "include_invalid": "true", "start": when,
        "end": when}).json()["items"]
    assert [r["valid"] for r in stored] == [False]


def test_put_without_the_required_device_and_key_is_a_422_naming_them(tenants, sensor):
    response = tenants.api.put(f"/sensors/{sensor['id']}", tenants.owner, json={"unit": "K"})
    assert response.status_code == 422
    locs = [error["loc"] for error in response.json()["errors"]]
    assert ["body", "device_id"] in locs and ["body", "key"] in locs
    assert tenants.api.get(f"/sensors/{sensor['id']}", tenants.owner).json() == sensor


@pytest.mark.parametrize("field", ["device_id", "key"])
def test_put_cannot_move_or_rename_the_sensor(tenants, sensor, field):
    other = {"device_id": tenants.api.device(tenants.owner)["id"], "key": "renamed"}[field]
    response = _replace(tenants, sensor, **{field: other})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", field]
    assert tenants.api.get(f"/sensors/{sensor['id']}", tenants.owner).json() == sensor


def test_another_organizations_sensor_is_a_404_and_a_viewer_gets_403(tenants, sensor):
    foreign = _replace(tenants, sensor, tenants.other, unit="K")
    assert foreign.status_code == 404 and foreign.json()["code"] == "not_found"
    viewer = _replace(tenants, sensor, tenants.viewer, unit="K")
    assert viewer.status_code == 403 and viewer.json()["code"] == "forbidden"
    assert tenants.api.get(f"/sensors/{sensor['id']}", tenants.owner).json() == sensor
