"""User text in filters and names: LIKE wildcards match themselves, and a NUL character is a
422 naming the field on SQLite as on PostgreSQL (PostgreSQL refused it, SQLite stored it)."""

import pytest


def test_q_percent_and_underscore_match_only_themselves(api, root):
    for name in ("50% off", "under_score", "plain"):
        api.device(root, name=name)
        assert api.post("/sites", root, json={"name": name}).status_code == 201
    api.add_user(root, username="al_ice")
    api.add_user(root, username="alxice")
    for path in ("/devices", "/sites", "/admin/devices"):
        names = lambda q: {item["name"] for item in api.get(path, root, params={"q": q})  # noqa
                           .json()["items"]}
        assert names("%") == {"50% off"}, path
        assert names("_") == {"under_score"}, path
    users = {u["username"] for u in api.get("/users", root, params={"q": "l_i"}).json()["items"]}
    assert users == {"al_ice"}


@pytest.mark.parametrize("path, body", [
    ("/sites", {"name": "a\x00b"}),
    ("/devices", {"name": "a\x00b"}),
    ("/groups", {"name": "g", "description": "a\x00b"}),
    ("/users", {"username": "nul\x00user", "password": "password-123", "role": "member"}),
])
def test_a_nul_in_a_body_string_is_a_422_naming_the_field(api, root, path, body):
    response = api.post(path, root, json=body)
    assert response.status_code == 422, response.text
    field = next(name for name, value in body.items() if "\x00" in value)
    assert field in response.json()["detail"]  # usernames have a pattern that says so


def test_a_nul_in_a_login_or_signup_is_a_422(api):
    assert api.post("/auth/login", json={"username": "a\x00", "password": "x" * 8}
                    ).status_code == 422
    assert api.post("/auth/signup", json={"username": "a\x00bc", "password": "x" * 8}
                    ).status_code == 422


@pytest.mark.parametrize("path", ["/devices?q=a%00b", "/sites?q=%00", "/users?q=x%00"])
def test_a_nul_in_a_query_parameter_is_a_422_naming_it(api, root, path):
    response = api.get(path, root)
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["query", "q"]
