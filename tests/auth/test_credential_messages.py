"""A credential sent in a form Telemetra does not read gets a 401 saying what was wrong."""

import pytest


@pytest.fixture
def key(api, root) -> str:
    return api.device(root)["api_key"]


@pytest.mark.parametrize("path", ["/readings", "/devices"])
def test_a_device_key_without_bearer_is_told_so(api, key, path):
    response = api.post(path, {"Authorization": key}, json={"temperature": 1})
    assert response.status_code == 401, response.text
    detail = response.json()["detail"]
    assert detail.startswith("the Authorization header holds a device key without its scheme")
    assert "'Authorization: Bearer <access token or device key>'" in detail
    assert "X-API-Key: tdk_" in detail
    assert key not in detail  # the key itself is never echoed


def test_a_device_key_with_another_scheme_is_told_so(api, key):
    response = api.post("/readings", {"Authorization": f"Token {key}"}, json={"t": 1})
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    detail = response.json()["detail"]
    assert detail.startswith("the Authorization header holds a device key with the scheme "
                             "'Token', which Telemetra does not take")
    assert key not in detail


def test_other_unreadable_headers_and_none(api, root):
    basic = api.get("/devices", {"Authorization": "Basic YWRtaW46cGFzcw=="})
    assert "a credential with the scheme 'Basic'" in basic.json()["detail"]
    empty = api.get("/devices", {"Authorization": "Bearer "})
    assert empty.status_code == 401
    assert api.get("/devices").json()["detail"] == (
        "authentication required: a Bearer token or an X-API-Key")
    # the readable forms still work
    assert api.get("/devices", root).status_code == 200
