"""An access token stands for one user, as they are now, in one session: it dies with any of them.

- a deleted user's token never becomes another user's (ids are never reused, and the token
  carries the user's security stamp);
- a password change ends every token issued before it, this session's too, and hands this
  session a fresh pair;
- refresh-token reuse and logout end the session's access tokens, not only its refresh tokens;
- a token's ``sub`` is an ASCII user id, or the token is refused.
"""

import jwt
import pytest
from fastapi.testclient import TestClient

from telemetra.app import create_app
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, make_settings
from tests.helpers import Api, bearer, unique


def _refresh(api: Api, pair: dict):
    return api.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})


def test_a_deleted_users_token_never_becomes_the_next_users(database_url):
    """The attack as found: tenant A's deleted `ghost` had the highest user id; tenant B's next
    user got that id on SQLite, and ghost's token answered as B's admin."""
    settings = make_settings(database_url, signup_mode="tenant")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        api = Api(client)
        _, owner_a = api.signup_tenant_owner()
        ghost, ghost_headers = api.add_user(owner_a, role="admin", username=unique("ghost"))
        assert api.get("/auth/me", ghost_headers).json()["id"] == ghost["id"]
        assert api.delete(f"/users/{ghost['id']}", owner_a).status_code == 204

        user_b, owner_b = api.signup_tenant_owner()
        newcomer, _ = api.add_user(owner_b, role="admin")
        api.device(owner_b, name="b-secret-device")

        assert min(user_b["id"], newcomer["id"]) > ghost["id"], \
            "a deleted user's id was given to a new user"
        me = api.get("/auth/me", ghost_headers)
        assert me.status_code == 401, f"ghost's token answered as {me.json()}"
        assert me.headers["content-type"] == "application/problem+json"
        devices = api.get("/devices", ghost_headers)
        assert devices.status_code == 401, f"ghost's token listed {devices.text}"


def test_password_change_ends_every_earlier_token_and_answers_a_fresh_pair(api):
    username = unique("pwd")
    api.post("/auth/signup", json={"username": username, "password": "password-123"})
    changing = api.tokens(username, "password-123")
    other = api.tokens(username, "password-123")
    rotated = _refresh(api, other).json()  # a session that has rotated once
    for pair in (changing, other, rotated):
        assert api.get("/auth/me", bearer(pair["access_token"])).status_code == 200

    response = api.post("/auth/password", bearer(changing["access_token"]),
                        json={"current_password": "password-123",
                              "new_password": "password-456"})
    assert response.status_code == 200, response.text
    fresh = response.json()
    assert set(fresh) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert fresh["token_type"] == "bearer" and fresh["expires_in"] == 15 * 60

    for name, pair in (("changing", changing), ("other", other), ("rotated", rotated)):
        me = api.get("/auth/me", bearer(pair["access_token"]))
        assert me.status_code == 401, f"the {name} session's old access token still works"
        assert _refresh(api, pair).status_code == 401, f"the {name} refresh token still works"

    assert api.get("/auth/me", bearer(fresh["access_token"])).json()["username"] == username
    again = _refresh(api, fresh)
    assert again.status_code == 200
    assert api.get("/auth/me", bearer(again.json()["access_token"])).status_code == 200
    # The fresh pair belongs to the session that changed the password: logging out ends it.
    headers = bearer(again.json()["access_token"])
    assert api.post("/auth/logout", headers).status_code == 204
    assert api.get("/auth/me", bearer(fresh["access_token"])).status_code == 401
    assert _refresh(api, again.json()).status_code == 401


def test_refresh_token_reuse_ends_the_rotated_pairs_access_token(api):
    first = api.tokens(ADMIN_USERNAME, ADMIN_PASSWORD)
    second = _refresh(api, first).json()
    assert api.get("/auth/me", bearer(second["access_token"])).status_code == 200
    bystander = api.tokens(ADMIN_USERNAME, ADMIN_PASSWORD)  # another session

    reuse = _refresh(api, first)
    assert reuse.status_code == 401 and "all tokens of this session" in reuse.json()["detail"]
    for pair in (first, second):
        assert api.get("/auth/me", bearer(pair["access_token"])).status_code == 401
    assert _refresh(api, second).status_code == 401
    assert api.get("/auth/me", bearer(bystander["access_token"])).status_code == 200


def test_logout_without_a_body_ends_the_sessions_refresh_token(api):
    pair = api.tokens(ADMIN_USERNAME, ADMIN_PASSWORD)
    bystander = api.tokens(ADMIN_USERNAME, ADMIN_PASSWORD)
    assert api.post("/auth/logout", bearer(pair["access_token"])).status_code == 204
    assert api.get("/auth/me", bearer(pair["access_token"])).status_code == 401
    assert _refresh(api, pair).status_code == 401
    assert api.get("/auth/me", bearer(bystander["access_token"])).status_code == 200
    assert _refresh(api, bystander).status_code == 200


def test_logout_ends_the_access_tokens_of_the_whole_session(api):
    first = api.tokens(ADMIN_USERNAME, ADMIN_PASSWORD)
    second = _refresh(api, first).json()
    assert api.post("/auth/logout", bearer(second["access_token"])).status_code == 204
    assert api.get("/auth/me", bearer(first["access_token"])).status_code == 401


def test_deactivation_ends_tokens_for_good_even_after_reactivation(api, root):
    user, headers = api.add_user(root)
    assert api.patch(f"/users/{user['id']}/deactivate", root).status_code == 200
    assert api.patch(f"/users/{user['id']}/activate", root).status_code == 200
    assert api.get("/auth/me", headers).status_code == 401


@pytest.mark.parametrize("sub", ["\u0661", "\u00b9", " 1", "+1", "1 ", "1\n", "01", "-1", "0",
                                 "1.0", "1_0", "", "99999999999999999999", 1])
def test_a_token_whose_sub_is_not_plain_ascii_digits_is_refused(api, settings, sub):
    """``int()`` takes "١" (Arabic-Indic one) as 1 and fails on "¹": neither is a user id.
    The token is otherwise the root's own, valid in every other claim."""
    real = api.tokens(ADMIN_USERNAME, ADMIN_PASSWORD)["access_token"]
    claims = jwt.decode(real, settings.secret_key, algorithms=["HS256"])
    assert claims["sub"] == "1"
    forged = jwt.encode({**claims, "sub": sub}, settings.secret_key, algorithm="HS256")
    response = api.get("/auth/me", bearer(forged))
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("claim", ["sid", "sst"])
@pytest.mark.parametrize("value", [None, 7, ["x"], {"a": 1}, "x" * 10_000])
def test_a_token_with_a_malformed_session_or_stamp_claim_is_refused(api, settings, claim,
                                                                    value):
    real = api.tokens(ADMIN_USERNAME, ADMIN_PASSWORD)["access_token"]
    claims = jwt.decode(real, settings.secret_key, algorithms=["HS256"])
    forged = jwt.encode({**claims, claim: value}, settings.secret_key, algorithm="HS256")
    assert api.get("/auth/me", bearer(forged)).status_code == 401
