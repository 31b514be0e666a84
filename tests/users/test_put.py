"""PUT /users/{id} replaces a user's email, full name and role (API.md, "Updates"), under the
rules of PATCH: self or admin, nobody changes their own role."""

from telemetra.users.events import UserChanged
from tests.helpers import unique


def _member(tenants) -> tuple[dict, dict]:
    return tenants.api.add_user(tenants.owner, "member", email=unique("m") + "@example.com",
                                full_name="Ann Example")


def test_put_replaces_the_user_and_clears_what_is_left_out(tenants):
    user, headers = _member(tenants)
    seen: list = []
    tenants.api.client.app.state.events.subscribe(UserChanged, seen.append)
    replaced = tenants.api.put(f"/users/{user['id']}", tenants.owner,
                               json={"full_name": "Ann Other", "role": "viewer"})
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert body["full_name"] == "Ann Other" and body["email"] is None
    assert body["role"] == "viewer" and body["username"] == user["username"]
    assert tenants.api.get("/auth/me", headers).json()["role"] == "viewer"
    # Recorded like a PATCH: live sockets of the user are checked again once committed.
    assert any(changed.user_id == user["id"] and changed.role == "viewer" for changed in seen)


def test_put_without_the_required_role_is_a_422_naming_it(tenants):
    user, _ = _member(tenants)
    response = tenants.api.put(f"/users/{user['id']}", tenants.owner,
                               json={"full_name": "No Role"})
    assert response.status_code == 422
    assert ["body", "role"] in [error["loc"] for error in response.json()["errors"]]
    assert tenants.api.get(f"/users/{user['id']}", tenants.owner).json() == user


def test_a_user_replaces_their_own_details_but_not_their_role(tenants):
    user, headers = _member(tenants)
    own = tenants.api.put(f"/users/{user['id']}", headers,
                          json={"email": "ann@example.com", "role": "member"})
    assert own.status_code == 200 and own.json()["email"] == "ann@example.com"
    assert own.json()["full_name"] is None
    promoted = tenants.api.put(f"/users/{user['id']}", headers, json={"role": "admin"})
    assert promoted.status_code == 403 and promoted.json()["code"] == "forbidden"


def test_another_organizations_user_is_a_404_and_a_viewer_gets_403(tenants):
    user, _ = _member(tenants)
    foreign = tenants.api.put(f"/users/{user['id']}", tenants.other, json={"role": "viewer"})
    assert foreign.status_code == 404 and foreign.json()["code"] == "not_found"
    viewer = tenants.api.put(f"/users/{user['id']}", tenants.viewer, json={"role": "member"})
    assert viewer.status_code == 403 and viewer.json()["code"] == "forbidden"
    assert tenants.api.get(f"/users/{user['id']}", tenants.owner).json() == user
