"""The caller's organization: read by all, changed by owners; usage against limits."""


def test_members_read_and_only_owners_update(api, root):
    _, admin_h = api.add_user(root, "admin")
    org = api.get("/organizations/me", admin_h).json()
    assert org["name"] == "Default" and org["invalid_tags"] == ["system", "suspect", "too old"]
    assert api.patch("/organizations/me", admin_h, json={"retention_days": 30}).status_code == 403
    changed = api.patch("/organizations/me", root, json={"retention_days": 30,
                                                         "invalid_tags": ["bad"]})
    assert changed.status_code == 200
    assert changed.json()["retention_days"] == 30 and changed.json()["invalid_tags"] == ["bad"]


def test_bad_retention_is_422(api, root):
    response = api.patch("/organizations/me", root, json={"retention_days": 0})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"][-1] == "retention_days"


def test_usage_counts_devices_against_the_plan(api, root):
    api.device(root)
    api.device(root)
    usage = api.get("/organizations/me/usage", root).json()
    assert usage["devices"] == 2 and usage["max_devices"] is None
    assert usage["readings_today"] == 0


def test_device_quota_from_the_plan(api, root):
    org = api.get("/organizations/me", root).json()
    plan = api.put(f"/admin/organizations/{org['id']}/plan", root,
                   json={"plan": "pro", "max_devices": 1})
    assert plan.status_code == 200 and plan.json()["plan"] == "pro"
    api.device(root)
    refused = api.post("/devices", root, json={"name": "one-too-many"})
    assert refused.status_code == 409 and refused.json()["code"] == "quota_exceeded"
    assert "max_devices" in refused.json()["detail"]
