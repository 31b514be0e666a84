"""Deleting a site deletes its devices: their keys are refused at once, even where they were
cached, and every subscriber hears of each device's deletion."""

from telemetra.devices.events import DeviceChanged
from tests.helpers import device_key, unique


def post_reading(api, device: dict):
    return api.post("/readings", device_key(device["api_key"]), json={"temperature": 21.5})


def test_deleting_a_site_refuses_its_devices_keys_at_once(api, root, client):
    deleted: list = []
    client.app.state.events.subscribe(
        DeviceChanged, lambda changed: changed.deleted and deleted.append(changed.device_id))
    site = api.post("/sites", root, json={"name": unique("site")}).json()
    gone = [api.device(root, site_id=site["id"]) for _ in range(3)]
    other_site = api.post("/sites", root, json={"name": unique("site")}).json()
    kept = api.device(root, site_id=other_site["id"])
    for device in [*gone, kept]:
        assert post_reading(api, device).status_code == 202  # its key is cached now
    assert api.delete(f"/sites/{site['id']}", root).status_code == 204
    for device in gone:
        refused = post_reading(api, device)
        assert refused.status_code == 401, refused.text
    assert post_reading(api, kept).status_code == 202
    assert sorted(deleted) == sorted(device["id"] for device in gone)
    assert client.portal.call(client.app.state.ingestor.device, gone[0]["id"]) is None


def test_a_refused_site_deletion_reports_nothing(api, root, client):
    deleted: list = []
    client.app.state.events.subscribe(DeviceChanged, deleted.append)
    assert api.delete("/sites/987654", root).status_code == 404
    assert deleted == []
