"""Strict input (API.md, Conventions), generated from the app's route table as the access
matrix is, so that no route can be forgotten:

* every route (every APIRoute under /api/v1, and /health) answers an unknown query parameter
  with a 422 problem naming it (``loc: ["query", name]``), even where the call would
  otherwise succeed; the names a route accepts are exactly those its OpenAPI documents;
* every route taking a JSON object body answers an unknown field with a 422 naming it,
  except where the body is free-form by design (below).

A misspelt filter must never silently mean "everything", least of all on a DELETE.
"""

import time

import pytest
from fastapi.testclient import TestClient

from telemetra.app import create_app
from telemetra.kit.routes import leaf_routes, query_names
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, make_settings
from tests.helpers import Api
from tests.test_access_matrix import _APP, ROUTES, body_properties, path_params, query_params

UNKNOWN = "unit_id"  # what a user of "units" systems types for site_id

# Bodies that take any field on purpose: a heartbeat's extra fields are merged into the
# device's metadata (API.md, Devices); an ingestion body's keys are sensor keys (body 1).
FREE_FORM_BODIES = {("POST", "/devices/{device_id}/heartbeat"): "merged into metadata"}


def _sorted(keys):
    return sorted(keys, key=lambda key: (key[1], key[0]))


@pytest.fixture(scope="module")
def api(databases):
    with TestClient(create_app(make_settings(databases.new())),
                    raise_server_exceptions=False) as client:
        yield Api(client)


@pytest.fixture(scope="module")
def root(api) -> dict:
    return api.login(ADMIN_USERNAME, ADMIN_PASSWORD)


def _path(method: str, template: str) -> str:
    return ROUTES[(method, template)].format(**{name: 1 for name in path_params(template)})


def _errors(response) -> list[list]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "validation_error", problem
    return [error["loc"] for error in problem["errors"]]


@pytest.mark.parametrize("method, template", [pytest.param(*key, id=f"{key[0]} {key[1]}")
                                              for key in _sorted(ROUTES)])
def test_an_unknown_query_parameter_is_a_422_naming_it(api, root, method, template):
    response = api.client.request(method, _path(method, template), headers=root,
                                  params={UNKNOWN: "1"})
    assert ["query", UNKNOWN] in _errors(response)
    assert UNKNOWN in response.json()["detail"]


def _route(method: str, template: str):
    path = ROUTES[(method, template)]
    return next(getattr(route, "original_route", route) for route in leaf_routes(_APP)
                if route.path_format == path and method in (route.methods or ()))


@pytest.mark.parametrize("method, template", [pytest.param(*key, id=f"{key[0]} {key[1]}")
                                              for key in _sorted(ROUTES)])
def test_a_route_accepts_exactly_the_query_parameters_it_documents(method, template):
    # What is refused is what OpenAPI does not show, and nothing documented is refused.
    assert query_names(_route(method, template).dependant) == set(query_params(method,
                                                                               template))


def _body_cases():
    cases = []
    for key in _sorted(ROUTES):
        if body_properties(*key) and key not in FREE_FORM_BODIES:
            cases.append(pytest.param(*key, id=f"{key[0]} {key[1]}"))
    return cases


@pytest.mark.parametrize("method, template", _body_cases())
def test_an_unknown_body_field_is_a_422_naming_it(api, root, method, template):
    fields = body_properties(method, template)
    assert UNKNOWN not in fields
    response = api.client.request(method, _path(method, template), headers=root,
                                  json={UNKNOWN: 1})
    assert any(loc[0] == "body" and loc[-1] == UNKNOWN for loc in _errors(response)), (
        response.text)


def test_the_body_cases_cover_the_json_routes():
    # Guard against the generator silently finding nothing (e.g. after a FastAPI upgrade).
    assert len(_body_cases()) >= 25
    assert ("PUT", "/sites/{site_id}") in {tuple(case.values) for case in _body_cases()}


def test_a_misspelt_filter_on_get_sensors_is_refused_naming_what_it_takes(api, root):
    response = api.get("/sensors", root, params={"unit_id": 1})
    assert _errors(response) == [["query", "unit_id"]]
    assert "site_id" in response.json()["detail"]  # the filter the user meant
    listed = api.get("/sensors", root, params={"site_id": 1, "skip": 0})  # skip: offset's alias
    assert listed.status_code == 200 and listed.json()["offset"] == 0


def test_a_misspelt_filter_on_delete_readings_deletes_nothing(api, root):
    device = api.device(root)
    when = int(time.time()) - 60
    sent = api.post(f"/devices/{device['id']}/readings", root,
                    json={"ts": when, "values": {"temperature": 20.5}})
    assert sent.status_code == 202 and sent.json()["accepted"] == 1
    window = {"device_id": device["id"], "start": when, "end": when}
    response = api.delete("/readings", root, params={**window, "sensorid": 1})
    assert _errors(response) == [["query", "sensorid"]]
    assert len(api.get("/readings", root, params=window).json()["items"]) == 1


def test_free_form_fields_take_any_names(api, root):
    device = api.post("/devices", root, json={"name": "free", "metadata": {"unit_id": 7}})
    assert device.status_code == 201 and device.json()["metadata"] == {"unit_id": 7}
    beat = api.post(f"/devices/{device.json()['id']}/heartbeat", root, json={"rssi": -61})
    assert beat.status_code == 200, beat.text
    command = api.post(f"/devices/{device.json()['id']}/commands", root,
                       json={"name": "reboot", "params": {"unit_id": 7}})
    assert command.status_code == 201, command.text


@pytest.mark.parametrize("body", [
    {"ts": 1767268800, "values": {"t": 1}},
    {"data": {"t": 1}, "timestamp": 1767268800},
    {"readings": [{"key": "t", "value": 1}]},
    {"sensor_type": "t", "value": 1},
    {"time": 1767268800, "value": [0, 0, 128, 63]},
    {"sensor_id": 1, "value": 1},
], ids=["values", "data", "readings", "sensor_type", "bytes", "sensor_id"])
def test_an_unknown_field_of_an_ingestion_body_is_a_422_naming_it(api, root, body):
    """Bodies 2 to 7 have fields of their own (body 1's keys are all sensor keys)."""
    device = api.device(root)
    for path in ("/readings", f"/devices/{device['id']}/readings"):
        response = api.post(path, root, params={"device_id": device["id"]} if path == "/readings"
                            else None, json={**body, UNKNOWN: 1})
        assert ["body", UNKNOWN] in _errors(response), response.text
