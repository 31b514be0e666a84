"""Sensors: CRUD, unique (device, key), valid ranges, filters."""


def test_sensor_crud_and_unique_key_per_device(api, root):
    device = api.device(root)
    created = api.post("/sensors", root, json={"device_id": device["id"], "key": "temperature",
                                               "type": "temperature", "unit": "°C",
                                               "valid_min": -40, "valid_max": 85})
    assert created.status_code == 201
    sensor = created.json()
    assert sensor["unit"] == "°C" and sensor["status"] == "active"
    assert sensor["last_value"] is None and sensor["last_ts"] is None
    again = api.post("/sensors", root, json={"device_id": device["id"], "key": "temperature"})
    assert again.status_code == 409
    other_device = api.device(root)
    same_key = api.post("/sensors", root, json={"device_id": other_device["id"],
                                                "key": "temperature"})
    assert same_key.status_code == 201
    changed = api.patch(f"/sensors/{sensor['id']}", root, json={"status": "maintenance",
                                                                "name": "Air"})
    assert changed.json()["status"] == "maintenance" and changed.json()["name"] == "Air"
    assert api.delete(f"/sensors/{sensor['id']}", root).status_code == 204
    assert api.get(f"/sensors/{sensor['id']}", root).status_code == 404


def test_valid_range_must_be_ordered(api, root):
    device = api.device(root)
    response = api.post("/sensors", root, json={"device_id": device["id"], "key": "x",
                                                "valid_min": 10, "valid_max": 0})
    assert response.status_code == 422 and "valid_min" in response.json()["detail"]
    sensor = api.post("/sensors", root, json={"device_id": device["id"], "key": "y",
                                              "valid_max": 5}).json()
    crossing = api.patch(f"/sensors/{sensor['id']}", root, json={"valid_min": 6})
    assert crossing.status_code == 422


def test_sensor_needs_a_device_of_the_organization(api, root):
    response = api.post("/sensors", root, json={"device_id": 424242, "key": "t"})
    assert response.status_code == 422 and "device_id" in response.json()["detail"]


def test_sensor_filters(api, root):
    site = api.post("/sites", root, json={"name": "S"}).json()
    a = api.device(root, site_id=site["id"])
    b = api.device(root)
    t = api.post("/sensors", root, json={"device_id": a["id"], "key": "t",
                                         "type": "temperature"}).json()
    h = api.post("/sensors", root, json={"device_id": b["id"], "key": "h", "type": "humidity",
                                         "status": "inactive"}).json()

    def ids(**params):
        return [s["id"] for s in api.get("/sensors", root, params=params).json()["items"]]

    assert ids(device_id=a["id"]) == [t["id"]]
    assert ids(site_id=site["id"]) == [t["id"]]
    assert ids(type="humidity") == [h["id"]]
    assert ids(status="inactive") == [h["id"]]
    assert ids(key="t") == [t["id"]]
