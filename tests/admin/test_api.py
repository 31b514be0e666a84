"""Superadmin endpoints work across organizations; nobody else may use them."""

from fastapi.testclient import TestClient

from telemetra.app import create_app
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, make_settings
from tests.helpers import Api


def test_admin_sees_and_acts_across_organizations(database_url):
    with TestClient(create_app(make_settings(database_url, signup_mode="tenant"))) as client:
        api = Api(client)
        root = api.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        tenant, tenant_h = api.signup_tenant_owner()
        device = api.device(tenant_h)
        api.device(root)

        stats = api.get("/admin/stats", root).json()
        assert stats["organizations"] == 2 and stats["devices"] == 2 and stats["users"] == 2
        all_devices = api.get("/admin/devices", root).json()
        assert all_devices["total"] == 2
        mine = api.get("/admin/devices", root,
                       params={"organization_id": tenant["organization_id"]}).json()
        assert [d["id"] for d in mine["items"]] == [device["id"]]
        assert api.get(f"/admin/devices/{device['id']}", root).json()["name"] == device["name"]

        changed = api.put(f"/admin/devices/{device['id']}/status", root,
                          json={"status": "inactive"})
        assert changed.status_code == 200
        assert api.get(f"/devices/{device['id']}", tenant_h).json()["status"] == "inactive"
        counts = api.get("/admin/devices/statuses", root).json()
        assert counts == {"active": 1, "inactive": 1, "maintenance": 0, "online": 0,
                          "offline": 2, "total": 2}

        users = api.get("/admin/users", root).json()
        assert {u["username"] for u in users["items"]} == {ADMIN_USERNAME, tenant["username"]}
        orgs = api.get("/admin/organizations", root).json()
        assert orgs["total"] == 2
        plan = api.put(f"/admin/organizations/{tenant['organization_id']}/plan", root,
                       json={"plan": "pro", "max_devices": 100})
        assert plan.json()["plan"] == "pro"
        assert api.get("/organizations/me", tenant_h).json()["max_devices"] == 100

        assert api.delete(f"/admin/devices/{device['id']}", root).status_code == 204
        assert api.get(f"/devices/{device['id']}", tenant_h).status_code == 404
        assert api.get("/admin/devices/999999", root).status_code == 404

        # An owner of an organization is not a superadmin.
        for path in ("/admin/stats", "/admin/devices", "/admin/users", "/admin/organizations"):
            assert api.get(path, tenant_h).status_code == 403
