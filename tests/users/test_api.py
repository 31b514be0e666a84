"""Managing users: who may add, change, deactivate and delete whom."""

from tests.conftest import ADMIN_USERNAME


def test_admin_adds_users_and_members_cannot(api, root):
    admin, admin_h = api.add_user(root, "admin")
    member, member_h = api.add_user(admin_h, "member")
    assert member["role"] == "member"
    refused = api.post("/users", member_h, json={"username": "nobody1",
                                                 "password": "password-123"})
    assert refused.status_code == 403
    listed = api.get("/users", member_h).json()
    assert {u["username"] for u in listed["items"]} >= {ADMIN_USERNAME, admin["username"],
                                                        member["username"]}
    assert listed["total"] == len(listed["items"]) and listed["limit"] == 50


def test_admin_cannot_grant_owner_or_manage_owners(api, root):
    admin, admin_h = api.add_user(root, "admin")
    grant = api.post("/users", admin_h, json={"username": "would-be-owner",
                                              "password": "password-123", "role": "owner"})
    assert grant.status_code == 403
    me = api.get("/auth/me", root).json()
    assert api.patch(f"/users/{me['id']}", admin_h, json={"role": "viewer"}).status_code == 403


def test_nobody_raises_their_own_role(api, root):
    member, member_h = api.add_user(root, "member")
    response = api.patch(f"/users/{member['id']}", member_h, json={"role": "admin"})
    assert response.status_code == 403
    assert api.get(f"/users/{member['id']}", member_h).json()["role"] == "member"
    # But they can change their own name and email.
    changed = api.patch(f"/users/{member['id']}", member_h,
                        json={"full_name": "Mia Member", "email": "mia@example.com"})
    assert changed.status_code == 200 and changed.json()["full_name"] == "Mia Member"


def test_members_cannot_update_other_users(api, root):
    member, member_h = api.add_user(root, "member")
    other, _ = api.add_user(root, "viewer")
    assert api.patch(f"/users/{other['id']}", member_h, json={"full_name": "x"}).status_code == 403


def test_owner_promotes_and_demotes(api, root):
    user, _ = api.add_user(root, "viewer")
    promoted = api.patch(f"/users/{user['id']}", root, json={"role": "admin"})
    assert promoted.status_code == 200 and promoted.json()["role"] == "admin"


def test_deactivation_takes_effect_on_the_very_next_request(api, root):
    user, user_h = api.add_user(root, "member")
    assert api.get("/auth/me", user_h).status_code == 200
    assert api.patch(f"/users/{user['id']}/deactivate", root).json()["is_active"] is False
    refused = api.get("/auth/me", user_h)
    assert refused.status_code == 401 and "deactivated" in refused.json()["detail"]
    assert api.post("/auth/login", json={"username": user["username"],
                                         "password": "password-123"}).status_code == 401
    api.patch(f"/users/{user['id']}/activate", root)
    # Deactivation ended the user's sessions: after reactivation they log in again.
    assert api.get("/auth/me", user_h).status_code == 401
    assert api.get("/auth/me", api.login(user["username"], "password-123")).status_code == 200


def test_superadmin_and_self_and_last_owner_are_protected(api, root):
    me = api.get("/auth/me", root).json()
    admin, admin_h = api.add_user(root, "admin")
    assert api.delete(f"/users/{me['id']}", admin_h).status_code == 403  # superadmin (and owner)
    assert api.patch(f"/users/{me['id']}/deactivate", admin_h).status_code == 403
    assert api.delete(f"/users/{admin['id']}", admin_h).status_code == 403  # oneself
    assert api.delete(f"/users/{me['id']}", root).status_code == 403  # oneself


def test_an_owner_may_demote_another_owner_but_not_the_last(api, root):
    owner2, owner2_h = api.add_user(root, "owner")
    me = api.get("/auth/me", root).json()
    # Two owners: owner2 may demote root.
    assert api.patch(f"/users/{me['id']}", owner2_h, json={"role": "admin"}).status_code == 200
    # owner2 is now the last owner; an admin ranks below and cannot demote or delete them.
    assert api.patch(f"/users/{owner2['id']}", root, json={"role": "admin"}).status_code == 403
    assert api.delete(f"/users/{owner2['id']}", root).status_code == 403
    assert api.get(f"/users/{owner2['id']}", root).json()["role"] == "owner"


def test_the_only_owner_cannot_leave_the_owner_role(api, root):
    owner2, owner2_h = api.add_user(root, "owner")
    me = api.get("/auth/me", root).json()
    assert api.patch(f"/users/{me['id']}", owner2_h, json={"role": "admin"}).status_code == 200
    # owner2 is the only owner left: they cannot demote, deactivate or delete themselves,
    # and nobody below them can, so the organization always keeps an owner.
    assert api.patch(f"/users/{owner2['id']}", owner2_h, json={"role": "admin"}).status_code == 403
    assert api.patch(f"/users/{owner2['id']}/deactivate", owner2_h).status_code == 403
    assert api.delete(f"/users/{owner2['id']}", owner2_h).status_code == 403
    assert api.get("/users", root, params={"role": "owner"}).json()["total"] == 1


def test_deleted_user_is_gone(api, root):
    user, user_h = api.add_user(root, "viewer")
    assert api.delete(f"/users/{user['id']}", root).status_code == 204
    assert api.get(f"/users/{user['id']}", root).status_code == 404
    assert api.get("/auth/me", user_h).status_code == 401


def test_user_list_pagination_and_filters(api, root):
    for _ in range(3):
        api.add_user(root, "viewer")
    page = api.get("/users", root, params={"limit": 2, "offset": 1}).json()
    assert page["limit"] == 2 and page["offset"] == 1 and len(page["items"]) == 2
    assert page["total"] >= 4
    skip = api.get("/users", root, params={"limit": 2, "skip": 1}).json()
    assert skip["items"] == page["items"]
    viewers = api.get("/users", root, params={"role": "viewer"}).json()
    assert viewers["total"] == 3 and all(u["role"] == "viewer" for u in viewers["items"])
    assert api.get("/users", root, params={"limit": 5000}).status_code == 422


def test_duplicate_username_or_email_is_409(api, root):
    api.add_user(root, "viewer", username="dupe", email="dupe@example.com")
    again = api.post("/users", root, json={"username": "dupe", "password": "password-123"})
    assert again.status_code == 409
    email = api.post("/users", root, json={"username": "other", "password": "password-123",
                                           "email": "dupe@example.com"})
    assert email.status_code == 409
