"""PUT /groups/{id} replaces the group (API.md, "Updates"); its devices stay."""

from tests.helpers import unique


def _group(tenants, **fields) -> dict:
    response = tenants.api.post("/groups", tenants.owner,
                                json={"name": unique("group"), **fields})
    assert response.status_code == 201, response.text
    return response.json()


def test_put_replaces_the_group_and_keeps_its_devices(tenants):
    group = _group(tenants, description="the line", color="#ff0000")
    device = tenants.api.device(tenants.owner)
    added = tenants.api.post(f"/groups/{group['id']}/devices/{device['id']}", tenants.owner)
    assert added.status_code == 204
    replaced = tenants.api.put(f"/groups/{group['id']}", tenants.owner,
                               json={"name": "Line 2", "color": "#00ff00"})
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert body["name"] == "Line 2" and body["color"] == "#00ff00"
    assert body["description"] is None  # left out: back to its default
    assert body["device_count"] == 1
    shown = tenants.api.get(f"/groups/{group['id']}", tenants.owner,
                            params={"include_devices": "true"}).json()
    assert [d["id"] for d in shown["devices"]] == [device["id"]]


def test_put_without_the_required_name_is_a_422_naming_it(tenants):
    group = _group(tenants, description="kept")
    response = tenants.api.put(f"/groups/{group['id']}", tenants.owner, json={"color": "#000000"})
    assert response.status_code == 422
    assert ["body", "name"] in [error["loc"] for error in response.json()["errors"]]
    assert tenants.api.get(f"/groups/{group['id']}", tenants.owner).json() == group


def test_another_organizations_group_is_a_404_and_a_viewer_gets_403(tenants):
    group = _group(tenants, description="kept")
    foreign = tenants.api.put(f"/groups/{group['id']}", tenants.other, json={"name": "mine"})
    assert foreign.status_code == 404 and foreign.json()["code"] == "not_found"
    viewer = tenants.api.put(f"/groups/{group['id']}", tenants.viewer, json={"name": "mine"})
    assert viewer.status_code == 403 and viewer.json()["code"] == "forbidden"
    assert tenants.api.get(f"/groups/{group['id']}", tenants.owner).json() == group
