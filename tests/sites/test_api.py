"""Sites: CRUD, statistics, and deleting a site deletes its devices and sensors."""


def test_site_crud(api, root):
    created = api.post("/sites", root, json={"name": "Plant 1", "location": "Ghent",
                                             "latitude": 51.05, "longitude": 3.72,
                                             "timezone": "Europe/Brussels"})
    assert created.status_code == 201
    site = created.json()
    assert site["name"] == "Plant 1" and site["timezone"] == "Europe/Brussels"
    assert api.get(f"/sites/{site['id']}", root).json() == site
    renamed = api.patch(f"/sites/{site['id']}", root, json={"name": "Plant One"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Plant One"
    assert renamed.json()["location"] == "Ghent"  # untouched fields stay
    listed = api.get("/sites", root, params={"q": "one"}).json()
    assert [s["id"] for s in listed["items"]] == [site["id"]] and listed["total"] == 1
    assert api.delete(f"/sites/{site['id']}", root).status_code == 204
    assert api.get(f"/sites/{site['id']}", root).status_code == 404


def test_site_name_is_unique_in_the_organization(api, root):
    api.post("/sites", root, json={"name": "Warehouse"})
    again = api.post("/sites", root, json={"name": "Warehouse"})
    assert again.status_code == 409 and again.json()["code"] == "conflict"


def test_bad_site_input_names_the_field(api, root):
    response = api.post("/sites", root, json={"name": "X", "latitude": 123})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "latitude"]
    tz = api.post("/sites", root, json={"name": "Y", "timezone": "Mars/Olympus"})
    assert tz.status_code == 422 and "timezone" in tz.json()["detail"]
    extra = api.post("/sites", root, json={"name": "Z", "colour": "red"})
    assert extra.status_code == 422 and extra.json()["errors"][0]["loc"] == ["body", "colour"]


def test_statistics_count_devices_and_sensors_by_status(api, root):
    site = api.post("/sites", root, json={"name": "Stats"}).json()
    device = api.device(root, site_id=site["id"])
    api.device(root, site_id=site["id"])
    api.device(root)  # elsewhere: not counted
    for key, status in [("t", "active"), ("h", "active"), ("p", "inactive"), ("c", "maintenance")]:
        response = api.post("/sensors", root, json={"device_id": device["id"], "key": key,
                                                    "status": status})
        assert response.status_code == 201
    stats = api.get(f"/sites/{site['id']}/statistics", root).json()
    assert stats == {"site_id": site["id"], "site_name": "Stats", "total_devices": 2,
                     "total_sensors": 4, "active_sensors": 2, "inactive_sensors": 1,
                     "maintenance_sensors": 1, "total_readings": 0, "latest_reading_ts": None}


def test_deleting_a_site_deletes_its_devices_and_sensors(api, root):
    site = api.post("/sites", root, json={"name": "Doomed"}).json()
    device = api.device(root, site_id=site["id"])
    sensor = api.post("/sensors", root, json={"device_id": device["id"], "key": "t"}).json()
    keep = api.device(root)
    assert api.delete(f"/sites/{site['id']}", root).status_code == 204
    assert api.get(f"/devices/{device['id']}", root).status_code == 404
    assert api.get(f"/sensors/{sensor['id']}", root).status_code == 404
    assert api.get(f"/devices/{keep['id']}", root).status_code == 200
    # The deleted device's key stops working too.
    beat = api.post(f"/devices/{device['id']}/heartbeat", {"X-API-Key": device["api_key"]})
    assert beat.status_code == 401
