"""Devices: one-time keys, key auth, rotation, status, heartbeats, logs, filters, cascades."""

import time

from tests.helpers import device_key


def test_registration_returns_a_tdk_key_once(api, root):
    device = api.device(root, device_type="esp32", metadata={"room": "greenhouse"})
    assert device["api_key"].startswith("tdk_") and len(device["api_key"]) >= 40
    assert device["api_key"].startswith(device["api_key_prefix"])
    assert device["status"] == "active" and device["online"] is False
    assert device["offline_after_seconds"] == 300
    shown = api.get(f"/devices/{device['id']}", root).json()
    assert "api_key" not in shown and "api_key_hash" not in shown
    assert shown["metadata"] == {"room": "greenhouse"}
    listed = api.get("/devices", root).json()
    assert all("api_key" not in d for d in listed["items"])


def test_key_accepted_as_x_api_key_and_as_bearer(api, root):
    device = api.device(root)
    by_header = api.post(f"/devices/{device['id']}/heartbeat", device_key(device["api_key"]))
    assert by_header.status_code == 200 and by_header.json()["online"] is True
    by_bearer = api.post(f"/devices/{device['id']}/heartbeat",
                         {"Authorization": f"Bearer {device['api_key']}"})
    assert by_bearer.status_code == 200
    wrong = api.post(f"/devices/{device['id']}/heartbeat", device_key(device["api_key"] + "x"))
    assert wrong.status_code == 401


def test_a_key_acts_only_for_its_own_device(api, root):
    mine, other = api.device(root), api.device(root)
    response = api.post(f"/devices/{other['id']}/heartbeat", device_key(mine["api_key"]))
    assert response.status_code == 404
    assert api.get(f"/devices/{other['id']}/status", root).json()["last_seen"] is None


def test_rotate_key_stops_the_old_key_at_once(api, root):
    device = api.device(root)
    rotated = api.post(f"/devices/{device['id']}/rotate-key", root)
    assert rotated.status_code == 200
    new_key = rotated.json()["api_key"]
    assert new_key != device["api_key"]
    old = api.post(f"/devices/{device['id']}/heartbeat", device_key(device["api_key"]))
    assert old.status_code == 401
    assert api.post(f"/devices/{device['id']}/heartbeat", device_key(new_key)).status_code == 200


def test_inactive_device_key_is_refused_with_403_until_reactivated(api, root):
    device = api.device(root)
    headers = device_key(device["api_key"])
    assert api.patch(f"/devices/{device['id']}", root, json={"status": "inactive"}).status_code == 200
    refused = api.post(f"/devices/{device['id']}/heartbeat", headers)
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    api.patch(f"/devices/{device['id']}", root, json={"status": "maintenance"})
    assert api.post(f"/devices/{device['id']}/heartbeat", headers).status_code == 200


def test_heartbeat_updates_last_seen_firmware_and_metadata(api, root):
    device = api.device(root, metadata={"a": 1})
    before = api.get(f"/devices/{device['id']}/status", root).json()
    assert before == {"device_id": device["id"], "status": "active", "online": False,
                      "last_seen": None, "offline_after_seconds": 300}
    beat = api.post(f"/devices/{device['id']}/heartbeat", device_key(device["api_key"]),
                    json={"firmware_version": "1.2.3", "rssi": -61})
    assert beat.status_code == 200
    status = api.get(f"/devices/{device['id']}/status", root).json()
    assert status["online"] is True and status["last_seen"].endswith("Z")
    shown = api.get(f"/devices/{device['id']}", root).json()
    assert shown["firmware_version"] == "1.2.3" and shown["metadata"] == {"a": 1, "rssi": -61}
    # A member may send a heartbeat on the device's behalf, with no body.
    assert api.post(f"/devices/{device['id']}/heartbeat", root).status_code == 200


def test_online_follows_offline_after_seconds(api, root):
    device = api.device(root, offline_after_seconds=5)
    api.post(f"/devices/{device['id']}/heartbeat", device_key(device["api_key"]))
    assert api.get("/devices", root, params={"online": True}).json()["total"] == 1
    # Shrinking the window moves the deadline back: last_seen + 5 s has passed after 5 s.
    time.sleep(5.2)
    assert api.get(f"/devices/{device['id']}/status", root).json()["online"] is False
    assert api.get("/devices", root, params={"online": False}).json()["total"] == 1
    assert api.get("/devices", root, params={"online": True}).json()["total"] == 0


def test_device_filters(api, root):
    site = api.post("/sites", root, json={"name": "Filters"}).json()
    group = api.post("/groups", root, json={"name": "G"}).json()
    a = api.device(root, name="boiler-a", device_type="boiler", site_id=site["id"])
    b = api.device(root, name="meter-b", device_type="meter")
    api.patch(f"/devices/{b['id']}", root, json={"status": "maintenance"})
    api.post(f"/groups/{group['id']}/devices/{b['id']}", root)

    def ids(**params):
        return [d["id"] for d in api.get("/devices", root, params=params).json()["items"]]

    assert ids(site_id=site["id"]) == [a["id"]]
    assert ids(group_id=group["id"]) == [b["id"]]
    assert ids(status="maintenance") == [b["id"]]
    assert ids(device_type="boiler") == [a["id"]]
    assert ids(q="METER") == [b["id"]]
    assert api.get("/devices", root, params={"status": "broken"}).status_code == 422


def test_site_must_belong_to_the_organization(api, root):
    response = api.post("/devices", root, json={"name": "x", "site_id": 999999})
    assert response.status_code == 422 and "site_id" in response.json()["detail"]


def test_delete_cascades_to_sensors_logs_and_membership(api, root):
    device = api.device(root)
    group = api.post("/groups", root, json={"name": "Cascade"}).json()
    api.post(f"/groups/{group['id']}/devices/{device['id']}", root)
    sensor = api.post("/sensors", root, json={"device_id": device["id"], "key": "t"}).json()
    api.post(f"/devices/{device['id']}/logs", device_key(device["api_key"]),
             json={"message": "boot"})
    assert api.delete(f"/devices/{device['id']}", root).status_code == 204
    assert api.get(f"/devices/{device['id']}", root).status_code == 404
    assert api.get(f"/sensors/{sensor['id']}", root).status_code == 404
    assert api.get(f"/groups/{group['id']}", root).json()["device_count"] == 0
    assert api.post(f"/devices/{device['id']}/heartbeat",
                    device_key(device["api_key"])).status_code == 401


def test_logs_one_or_a_list_and_filters(api, root):
    device = api.device(root)
    headers = device_key(device["api_key"])
    one = api.post(f"/devices/{device['id']}/logs", headers,
                   json={"level": "error", "message": "sensor fault",
                         "ts": "2026-01-01T10:00:00Z"})
    assert one.status_code == 201 and one.json() == {"accepted": 1}
    many = api.post(f"/devices/{device['id']}/logs", headers, json=[
        {"level": "info", "message": "boot", "ts": "2026-01-01T09:00:00Z"},
        {"level": "warning", "message": "low battery", "ts": 1767265200},
    ])
    assert many.json() == {"accepted": 2}
    logs = api.get(f"/devices/{device['id']}/logs", root).json()
    assert [entry["message"] for entry in logs["items"]] == ["low battery", "sensor fault", "boot"]
    assert logs["items"][0]["ts"] == "2026-01-01T11:00:00Z"
    errors = api.get(f"/devices/{device['id']}/logs", root, params={"level": "error"}).json()
    assert [entry["message"] for entry in errors["items"]] == ["sensor fault"]
    window = api.get(f"/devices/{device['id']}/logs", root,
                     params={"start": "2026-01-01T09:30:00Z", "end": "2026-01-01T10:00:00Z"})
    assert [entry["message"] for entry in window.json()["items"]] == ["sensor fault"]
    recent = api.get(f"/devices/{device['id']}/logs", root, params={"start": "-1h"}).json()
    assert recent["total"] == 0
    bad = api.get(f"/devices/{device['id']}/logs", root, params={"start": "yesterday"})
    assert bad.status_code == 422 and "start" in bad.json()["detail"]
    empty = api.post(f"/devices/{device['id']}/logs", headers, json={"message": ""})
    assert empty.status_code == 422


def test_logs_from_a_device_mark_it_seen(api, root):
    device = api.device(root)
    api.post(f"/devices/{device['id']}/logs", device_key(device["api_key"]),
             json={"message": "hello"})
    assert api.get(f"/devices/{device['id']}/status", root).json()["online"] is True
