"""Sign-up, login, token rotation, logout and password changes, as a client sees them."""

import time

import jwt

from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME
from tests.helpers import bearer, unique


def test_signup_single_mode_joins_default_organization_as_member(api):
    response = api.post("/auth/signup", json={"username": "alice", "password": "password-123",
                                              "email": "alice@example.com"})
    assert response.status_code == 201
    body = response.json()
    assert body["role"] == "member" and "password" not in str(body)
    me = api.get("/auth/me", api.login("alice", "password-123")).json()
    assert me["organization"]["name"] == "Default"
    assert me["email"] == "alice@example.com" and me["is_superadmin"] is False


def test_signup_twice_is_a_conflict(api):
    api.post("/auth/signup", json={"username": "bob", "password": "password-123"})
    response = api.post("/auth/signup", json={"username": "bob", "password": "password-456"})
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "conflict"


def test_signup_rejects_short_password_naming_the_field(api):
    response = api.post("/auth/signup", json={"username": "carol", "password": "short"})
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert any(error["loc"][-1] == "password" for error in problem["errors"])


def test_login_with_form_and_json_by_username_or_email(api):
    api.post("/auth/signup", json={"username": "dave", "password": "password-123",
                                   "email": "dave@example.com"})
    form = api.post("/auth/login", data={"username": "dave", "password": "password-123"})
    assert form.status_code == 200 and form.json()["token_type"] == "bearer"
    by_email = api.post("/auth/login", json={"email": "dave@example.com",
                                             "password": "password-123"})
    assert by_email.status_code == 200
    username_field_email = api.post("/auth/login", data={"username": "dave@example.com",
                                                         "password": "password-123"})
    assert username_field_email.status_code == 200
    assert by_email.json()["expires_in"] == 15 * 60


def test_login_failures_are_401_problems(api):
    wrong = api.post("/auth/login", json={"username": ADMIN_USERNAME, "password": "nope-nope"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "unauthorized"
    unknown = api.post("/auth/login", json={"username": "ghost", "password": "nope-nope"})
    assert unknown.status_code == 401
    assert unknown.json()["detail"] == wrong.json()["detail"]  # no username enumeration
    missing = api.post("/auth/login", json={"password": "x"})
    assert missing.status_code == 422
    bad_type = api.post("/auth/login", content=b"hello", headers={"Content-Type": "text/plain"})
    assert bad_type.status_code == 415


def test_refresh_rotates_and_reuse_revokes_the_family(api):
    first = api.tokens(ADMIN_USERNAME, ADMIN_PASSWORD)
    second = api.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    assert second.json()["refresh_token"] != first["refresh_token"]
    third = api.post("/auth/refresh", json={"refresh_token": second.json()["refresh_token"]})
    assert third.status_code == 200
    # The first token was spent: presenting it again is reuse, and the family dies.
    reuse = api.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401 and "reuse" in reuse.json()["detail"]
    after = api.post("/auth/refresh", json={"refresh_token": third.json()["refresh_token"]})
    assert after.status_code == 401
    # Another login (another family) is unaffected.
    other = api.tokens(ADMIN_USERNAME, ADMIN_PASSWORD)
    assert api.post("/auth/refresh", json={"refresh_token": other["refresh_token"]}).status_code == 200


def test_unknown_refresh_token_is_401(api):
    response = api.post("/auth/refresh", json={"refresh_token": "trt_nonsense"})
    assert response.status_code == 401


def test_logout_revokes_access_and_refresh_tokens(api):
    pair = api.tokens(ADMIN_USERNAME, ADMIN_PASSWORD)
    headers = bearer(pair["access_token"])
    assert api.get("/auth/me", headers).status_code == 200
    response = api.post("/auth/logout", headers, json={"refresh_token": pair["refresh_token"]})
    assert response.status_code == 204
    assert api.get("/auth/me", headers).status_code == 401
    assert api.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code == 401


def test_expired_and_forged_tokens_are_refused(api, settings):
    now = int(time.time())
    expired = jwt.encode({"sub": "1", "sid": "s", "sst": "x", "iat": now - 120,
                          "exp": now - 60, "typ": "access"}, settings.secret_key,
                         algorithm="HS256")
    response = api.get("/auth/me", bearer(expired))
    assert response.status_code == 401 and "expired" in response.json()["detail"]
    assert response.headers["www-authenticate"] == "Bearer"
    forged = jwt.encode({"sub": "1", "jti": "x", "exp": now + 60, "typ": "access"},
                        "another-secret-another-secret-another", algorithm="HS256")
    assert api.get("/auth/me", bearer(forged)).status_code == 401
    assert api.get("/auth/me").status_code == 401


def test_password_change_needs_current_password_and_ends_other_sessions(api):
    api.post("/auth/signup", json={"username": "erin", "password": "password-123"})
    pair = api.tokens("erin", "password-123")
    headers = bearer(pair["access_token"])
    wrong = api.post("/auth/password", headers, json={"current_password": "bad-password",
                                                      "new_password": "password-456"})
    assert wrong.status_code == 403
    ok = api.post("/auth/password", headers, json={"current_password": "password-123",
                                                   "new_password": "password-456"})
    assert ok.status_code == 200 and ok.json()["token_type"] == "bearer"
    assert api.post("/auth/login", json={"username": "erin", "password": "password-123"}).status_code == 401
    assert api.post("/auth/login", json={"username": "erin", "password": "password-456"}).status_code == 200
    assert api.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code == 401


def test_superadmin_from_settings_exists_at_first_start(api, root):
    me = api.get("/auth/me", root).json()
    assert me["username"] == ADMIN_USERNAME and me["is_superadmin"] and me["role"] == "owner"


def test_every_response_has_a_request_id_and_echoes_the_clients(api):
    assert api.get("/health").headers["x-request-id"]
    echoed = api.get("/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    assert api.get("/nowhere").headers["x-request-id"]


def test_unknown_route_is_a_problem_404(api):
    response = api.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"


def test_passwords_are_stored_only_as_argon2_hashes(api, client):
    from sqlalchemy import select

    from telemetra.db.tables import users

    username = unique("hashcheck")
    api.post("/auth/signup", json={"username": username, "password": "password-123"})

    async def stored_hash():
        async with client.app.state.engine.connect() as conn:
            return await conn.scalar(select(users.c.password_hash)
                                     .where(users.c.username == username))

    value = client.portal.call(stored_hash)
    assert value.startswith("$argon2id$") and "password-123" not in value
