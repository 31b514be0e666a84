"""A device posting with a key this process has verified skips FastAPI's routing; every
answer must still be the one the route gives. Each case warms the key first (a request the
normal route answers), then checks the answer the fast path gives, or the fallback."""

import pytest

from tests.helpers import bearer, device_key

T = 1767268800


@pytest.fixture
def warm(api, device):
    """The key is verified (and cached) by a first request."""
    headers = device_key(device["api_key"])
    assert api.post("/readings", headers, json={"ts": T, "values": {"t": 0}}).status_code == 202
    return headers


def test_the_fast_answer_is_the_routes_answer(api, device, warm):
    response = api.post("/readings", {**warm, "X-Request-ID": "probe-1"},
                        json={"ts": T + 1, "values": {"t": 1, "h": "x"}})
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "duplicates": 0,
                               "rejected": [{"index": 1, "reason": "string value",
                                             "key": "h"}]}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"] == "probe-1"
    assert response.headers["x-content-type-options"] == "nosniff"
    again = api.post(f"/devices/{device['id']}/readings", warm,
                     json={"ts": T + 1, "values": {"t": 1}})
    assert again.json() == {"accepted": 0, "duplicates": 1, "rejected": []}
    as_bearer = api.post("/readings", bearer(device["api_key"]),
                         json={"ts": T + 2, "values": {"t": 2}})
    assert as_bearer.status_code == 202 and as_bearer.json()["accepted"] == 1


@pytest.mark.parametrize("case", ["no format", "not json", "too large", "other device",
                                  "query string", "unknown key"])
def test_anything_unusual_gets_the_routes_answer(api, root, device, warm, case):
    other = api.device(root)
    path, kwargs, headers, expected = "/readings", {}, warm, None
    if case == "no format":
        kwargs, expected = {"json": ["nothing", "usable"]}, 422
    elif case == "not json":
        kwargs, expected = {"content": b"{broken"}, 422
    elif case == "too large":
        kwargs, expected = {"content": b"[" + b"1," * 600_000 + b"1]"}, 413
    elif case == "other device":
        path, kwargs, expected = f"/devices/{other['id']}/readings", {"json": {"t": 1}}, 404
    elif case == "query string":
        path, kwargs, expected = f"/readings?device_id={other['id']}", {"json": {"t": 1}}, 404
    else:
        headers, kwargs, expected = device_key("tdk_" + "x" * 43), {"json": {"t": 1}}, 401
    response = api.post(path, headers, **kwargs)
    assert response.status_code == expected, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == expected


def test_a_deactivated_device_is_refused_at_once(api, root, device, warm):
    path = f"/devices/{device['id']}"
    assert api.patch(path, root, json={"status": "inactive"}).status_code == 200
    refused = api.post("/readings", warm, json={"t": 1})
    assert refused.status_code == 403
    assert api.patch(path, root, json={"status": "active"}).status_code == 200
    assert api.post("/readings", warm, json={"t": 1}).status_code == 202


def test_a_key_not_yet_verified_is_verified_by_the_fast_path_itself(client, api, root, device):
    """In a fleet most devices are new to the process they reach: the fast path verifies the
    key itself (one query) rather than going through the route, and remembers it."""
    from telemetra.auth.dependencies import get_principal_outside_transaction

    def route_taken():
        raise AssertionError("the request went through the route's dependencies")

    client.app.state.device_keys.clear()
    client.app.dependency_overrides[get_principal_outside_transaction] = route_taken
    try:
        first = api.post("/readings", device_key(device["api_key"]),
                         json={"ts": T, "values": {"t": 0}})
        assert first.status_code == 202, first.text
        assert first.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
        assert client.app.state.device_keys.get(device["api_key"]).id == device["id"]
    finally:
        client.app.dependency_overrides.clear()
    # A key that does not verify, or an inactive device, still get the route's answer.
    client.app.state.device_keys.clear()
    wrong = api.post("/readings", device_key(device["api_key"][:-2] + "xx"), json={"t": 1})
    assert wrong.status_code == 401 and wrong.json()["status"] == 401
    assert api.patch(f"/devices/{device['id']}", root,
                     json={"status": "inactive"}).status_code == 200
    client.app.state.device_keys.clear()
    refused = api.post("/readings", device_key(device["api_key"]), json={"t": 1})
    assert refused.status_code == 403 and refused.json()["status"] == 403
    assert client.app.state.device_keys.get(device["api_key"]) is None
