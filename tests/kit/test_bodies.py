"""Bounded input (API.md Conventions), generated from the app's route table so no route that
takes a JSON body can be forgotten: a body nested deeper than 32 is a 422 naming the depth, a
body over the route's limit a 413, a free-form field deeper than 16 (or over 16 KiB) a 422
wherever one is stored; never a 500. On SQLite and PostgreSQL."""

import re
import typing

import orjson
import pytest
from fastapi.routing import APIRoute

from telemetra.kit.body import INGEST, MAX_JSON_DEPTH, STREAM, too_deep
from telemetra.kit.routes import leaf_routes
from telemetra.kit.schemas import MAX_FREE_FORM_BYTES, MAX_FREE_FORM_DEPTH, check_free_form
from telemetra.settings import Settings

API = "/api/v1"
DEFAULTS = Settings(_env_file=None)


def nested(depth: int) -> str:
    """A JSON value of exactly ``depth`` levels: objects and arrays in turn."""
    text = "1"
    for level in range(depth):
        text = f"[{text}]" if level % 2 else f'{{"k": {text}}}'
    return text


def _json_body_routes(app) -> list[tuple[str, str, APIRoute]]:
    found = []
    for context in leaf_routes(app):
        route = getattr(context, "original_route", context)
        if not isinstance(route, APIRoute) or not context.path_format.startswith(API):
            continue
        declared = ((route.openapi_extra or {}).get("requestBody", {}).get("content", {}))
        if route.body_field is None and "application/json" not in declared:
            continue
        if getattr(route.endpoint, "telemetra_body_limit", None) == STREAM:
            continue  # imports: CSV or NDJSON, checked line by line
        for method in sorted(route.methods):
            found.append((method, context.path_format, route))
    return found


def _free_form_fields(route: APIRoute) -> list[str]:
    """The body fields of ``route`` that are stored free-form (typed with kit.schemas'
    FreeForm or FreeFormValue)."""
    if route.body_field is None:
        return []
    model = route.body_field.field_info.annotation
    fields = []
    for name, info in getattr(model, "model_fields", {}).items():
        if _is_free_form(info.annotation) or any(
                getattr(meta, "func", None) is check_free_form for meta in info.metadata):
            fields.append(name)
    return fields


def _is_free_form(annotation) -> bool:
    if any(getattr(meta, "func", None) is check_free_form
           for meta in getattr(annotation, "__metadata__", ())):
        return True
    return any(_is_free_form(arg) for arg in typing.get_args(annotation))


@pytest.fixture
def world(api, root):
    device = api.device(root)
    command = api.post(f"/devices/{device['id']}/commands", root, json={"name": "reboot"})
    assert command.status_code == 201, command.text
    return {"device": device, "command": command.json(), "root": root,
            "key": {"X-API-Key": device["api_key"]}}


def _call(api, world, method: str, template: str, route: APIRoute, content: bytes,
          content_type: str = "application/json"):
    ids = {"device_id": world["device"]["id"], "command_id": world["command"]["id"]}
    path = re.sub(r"\{(\w+)\}", lambda m: str(ids.get(m.group(1), 1)), template)
    ingest = getattr(route.endpoint, "telemetra_body_limit", None) == INGEST
    headers = {**(world["key"] if ingest else world["root"]), "content-type": content_type}
    return api.client.request(method, path, headers=headers, content=content)


def test_the_route_table_has_the_json_routes_this_file_relies_on(client):
    templates = {(m, t) for m, t, _ in _json_body_routes(client.app)}
    for expected in [("POST", "/api/v1/auth/login"), ("POST", "/api/v1/auth/signup"),
                     ("POST", "/api/v1/readings"), ("POST", "/api/v1/devices"),
                     ("POST", "/api/v1/devices/{device_id}/heartbeat"),
                     ("PATCH", "/api/v1/devices/{device_id}/commands/{command_id}")]:
        assert expected in templates
    assert len(templates) > 20


def test_a_body_nested_33_deep_is_a_422_naming_the_depth_on_every_json_route(api, world):
    deep = nested(MAX_JSON_DEPTH + 1).encode()
    failures = []
    for method, template, route in _json_body_routes(api.client.app):
        response = _call(api, world, method, template, route, b'{"x": ' + deep + b"}")
        if response.status_code != 422 or "nested deeper than 32" not in response.text:
            failures.append((method, template, response.status_code, response.text[:200]))
    assert not failures


def test_a_login_with_a_1000_deep_username_is_a_422_not_a_500(api):
    body = '{"username": ' + nested(1000) + ', "password": "whatever-123"}'
    response = api.post("/auth/login", content=body,
                        headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "nested deeper than 32" in response.json()["detail"]


def test_a_body_over_the_routes_limit_is_a_413_on_every_json_route(api, world):
    failures = []
    for method, template, route in _json_body_routes(api.client.app):
        ingest = getattr(route.endpoint, "telemetra_body_limit", None) == INGEST
        limit = DEFAULTS.max_body_bytes if ingest else DEFAULTS.max_request_bytes
        body = b'{"x": "' + b"a" * limit + b'"}'
        response = _call(api, world, method, template, route, body)
        if response.status_code != 413 or response.json()["code"] != "payload_too_large":
            failures.append((method, template, response.status_code, response.text[:200]))
    assert not failures


def test_a_body_within_the_default_limit_still_works(api, root):
    metadata = {"notes": "n" * (MAX_FREE_FORM_BYTES - 100)}
    response = api.post("/devices", root, json={"name": "roomy", "metadata": metadata})
    assert response.status_code == 201, response.text


def test_deep_or_huge_free_form_fields_are_a_422_on_every_route_that_stores_one(api, world):
    routes = [(m, t, r, f) for m, t, r in _json_body_routes(api.client.app)
              for f in _free_form_fields(r)]
    assert {f for *_, f in routes} >= {"metadata", "params", "result"}
    deep = {"a": [[[[[[[[[[[[[[[[[["too deep"]]]]]]]]]]]]]]]]]]}
    assert too_deep(orjson.dumps(deep), MAX_FREE_FORM_DEPTH)
    huge = {"a": "x" * (MAX_FREE_FORM_BYTES + 1)}
    failures = []
    for method, template, route, name in routes:
        for value in (deep, huge, {"a": "nul\x00"}):
            body = {"name": "reboot", "status": "succeeded", name: value}
            if template.endswith("/devices"):
                body["name"] = "a device"
            response = _call(api, world, method, template, route,
                             orjson.dumps(body))
            if response.status_code != 422 or name not in response.text:
                failures.append((method, template, name, response.status_code,
                                 response.text[:200]))
    assert not failures


def test_a_heartbeat_with_a_deep_extra_field_is_refused_and_listings_keep_working(api, world):
    device_id, root = world["device"]["id"], world["root"]
    # 500 deep was accepted, and then every listing showing the device answered 500.
    for raw in ('{"extra": ' + nested(30) + "}",
                orjson.dumps({"extra": "x" * (MAX_FREE_FORM_BYTES + 1)}).decode()):
        response = api.post(f"/devices/{device_id}/heartbeat",
                            {**world["key"], "content-type": "application/json"}, content=raw)
        assert response.status_code == 422, response.text
    # Many small heartbeats cannot grow the metadata past its bound either.
    chunk = "y" * (MAX_FREE_FORM_BYTES // 4)
    statuses = {api.post(f"/devices/{device_id}/heartbeat", world["key"],
                         json={f"k{i}": chunk}).status_code for i in range(6)}
    assert statuses == {200, 422}
    for path in ("/devices", f"/devices/{device_id}", "/admin/devices"):
        assert api.get(path, root).status_code == 200, path


def test_a_command_result_that_is_too_deep_is_refused(api, world):
    device_id, command_id = world["device"]["id"], world["command"]["id"]
    response = api.patch(f"/devices/{device_id}/commands/{command_id}", world["key"],
                         json={"status": "succeeded", "result": [[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]})
    assert response.status_code == 422
    assert "result" in response.text
    assert api.get(f"/devices/{device_id}/commands/{command_id}", world["root"]).status_code == 200


def test_form_bodies_are_not_counted_as_nesting(api):
    response = api.post("/auth/login", data={"username": "[" * 100, "password": "x" * 10})
    assert response.status_code == 401


def test_the_depth_check_is_exact_on_json_and_ignores_brackets_in_strings():
    for depth in (1, 16, 31, 32, 33, 100):
        assert too_deep(nested(depth).encode()) is (depth > MAX_JSON_DEPTH)
    assert not too_deep(b'{"a": "' + b"[" * 100 + b'"}')
    assert not too_deep(b'["\\"' + b"[" * 100 + b'"]')
    assert too_deep(b'["]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", ' + nested(40).encode() + b"]")
    assert too_deep(b'["\\\\", ' + nested(40).encode() + b"]")
