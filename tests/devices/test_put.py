"""PUT /devices/{id} replaces the device (API.md, "Updates"), recorded as changed like any
update: what the change means (an inactive device's key is refused) holds once answered."""

from tests.helpers import device_key


def test_put_replaces_the_device_and_resets_what_is_left_out(tenants):
    site = tenants.api.post("/sites", tenants.owner, json={"name": "Hall"}).json()
    device = tenants.api.device(tenants.owner, site_id=site["id"], device_type="esp32",
                                location="roof", metadata={"rack": 4},
                                offline_after_seconds=60)
    replaced = tenants.api.put(f"/devices/{device['id']}", tenants.owner,
                               json={"name": "gateway", "firmware_version": "2.0"})
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert body["name"] == "gateway" and body["firmware_version"] == "2.0"
    assert (body["site_id"], body["device_type"], body["location"], body["metadata"]) == (
        None, None, None, None)
    assert body["status"] == "active" and body["offline_after_seconds"] == 300
    assert body["api_key_prefix"] == device["api_key_prefix"]  # the key is not replaced
    assert tenants.api.get(f"/devices/{device['id']}", tenants.owner).json() == body


def test_put_status_takes_effect_at_once_and_leaving_it_out_reactivates(tenants):
    device = tenants.api.device(tenants.owner)
    key = device_key(device["api_key"])
    beat = f"/devices/{device['id']}/heartbeat"
    assert tenants.api.post(beat, key, json={}).status_code == 200  # its key is cached now
    off = tenants.api.put(f"/devices/{device['id']}", tenants.owner,
                          json={"name": device["name"], "status": "inactive"})
    assert off.status_code == 200 and off.json()["status"] == "inactive"
    refused = tenants.api.post(beat, key, json={})
    assert refused.status_code == 403, refused.text
    on = tenants.api.put(f"/devices/{device['id']}", tenants.owner, json={"name": "back"})
    assert on.status_code == 200 and on.json()["status"] == "active"
    assert tenants.api.post(beat, key, json={}).status_code == 200


def test_put_without_the_required_name_is_a_422_naming_it(tenants):
    device = tenants.api.device(tenants.owner, location="roof")
    response = tenants.api.put(f"/devices/{device['id']}", tenants.owner,
                               json={"location": "cellar"})
    assert response.status_code == 422
    assert ["body", "name"] in [error["loc"] for error in response.json()["errors"]]
    assert tenants.api.get(f"/devices/{device['id']}", tenants.owner).json()["location"] == "roof"


def test_put_refers_only_to_the_organizations_own_site(tenants):
    device = tenants.api.device(tenants.owner)
    theirs = tenants.api.post("/sites", tenants.other, json={"name": "Theirs"}).json()
    response = tenants.api.put(f"/devices/{device['id']}", tenants.owner,
                               json={"name": "x", "site_id": theirs["id"]})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "site_id"]


def test_another_organizations_device_is_a_404_and_a_viewer_gets_403(tenants):
    device = tenants.api.device(tenants.owner, location="roof")
    shown = tenants.api.get(f"/devices/{device['id']}", tenants.owner).json()
    foreign = tenants.api.put(f"/devices/{device['id']}", tenants.other, json={"name": "mine"})
    assert foreign.status_code == 404 and foreign.json()["code"] == "not_found"
    viewer = tenants.api.put(f"/devices/{device['id']}", tenants.viewer, json={"name": "mine"})
    assert viewer.status_code == 403 and viewer.json()["code"] == "forbidden"
    assert tenants.api.get(f"/devices/{device['id']}", tenants.owner).json() == shown
