"""Groups: CRUD, many-to-many membership, include_devices."""


def test_group_membership_is_many_to_many(api, root):
    g1 = api.post("/groups", root, json={"name": "North", "color": "#ff0000"}).json()
    g2 = api.post("/groups", root, json={"name": "Boilers", "description": "all boilers"}).json()
    device = api.device(root)
    for group in (g1, g2):
        assert api.post(f"/groups/{group['id']}/devices/{device['id']}", root).status_code == 204
    # Adding twice changes nothing.
    assert api.post(f"/groups/{g1['id']}/devices/{device['id']}", root).status_code == 204
    shown = api.get(f"/groups/{g1['id']}", root, params={"include_devices": True}).json()
    assert shown["device_count"] == 1 and [d["id"] for d in shown["devices"]] == [device["id"]]
    assert "api_key" not in shown["devices"][0]
    plain = api.get(f"/groups/{g1['id']}", root).json()
    assert "devices" not in plain and plain["color"] == "#ff0000"
    assert api.delete(f"/groups/{g1['id']}/devices/{device['id']}", root).status_code == 204
    assert api.get(f"/groups/{g1['id']}", root).json()["device_count"] == 0
    assert api.get(f"/groups/{g2['id']}", root).json()["device_count"] == 1


def test_group_crud_and_unique_name(api, root):
    group = api.post("/groups", root, json={"name": "East"}).json()
    assert api.post("/groups", root, json={"name": "East"}).status_code == 409
    renamed = api.patch(f"/groups/{group['id']}", root, json={"name": "West"})
    assert renamed.json()["name"] == "West"
    listed = api.get("/groups", root).json()
    assert listed["total"] == 1 and listed["items"][0]["device_count"] == 0
    device = api.device(root)
    api.post(f"/groups/{group['id']}/devices/{device['id']}", root)
    assert api.delete(f"/groups/{group['id']}", root).status_code == 204
    assert api.get(f"/groups/{group['id']}", root).status_code == 404
    assert api.get(f"/devices/{device['id']}", root).status_code == 200  # devices stay


def test_membership_of_unknown_device_is_404(api, root):
    group = api.post("/groups", root, json={"name": "Lonely"}).json()
    assert api.post(f"/groups/{group['id']}/devices/777777", root).status_code == 404
