"""Querying readings: filters, inclusive ranges, relative times, order, paging, latest,
review (validate/archive with their 409s), edits and deletes that everything agrees on."""

import pytest

from tests.helpers import device_key

T = 1767268800  # 2026-01-01T12:00:00Z


@pytest.fixture
def loaded(api, root):
    """Two devices on a site and one elsewhere; t and h every minute for 10 minutes."""
    site = api.post("/sites", root, json={"name": "Q"}).json()
    a, b = api.device(root, site_id=site["id"]), api.device(root, site_id=site["id"])
    c = api.device(root)
    for device in (a, b, c):
        body = [{"ts": T + 60 * i, "values": {"t": float(i), "h": 100.0 + i}} for i in range(10)]
        assert api.post("/readings", device_key(device["api_key"]), json=body).status_code == 202
    return {"site": site, "a": a, "b": b, "c": c}


def get(api, headers, **params):
    response = api.get("/readings", headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_filters_select_what_they_name(api, root, loaded):
    a = loaded["a"]
    assert len(get(api, root, device_id=a["id"], limit=1000)["items"]) == 20
    assert len(get(api, root, site_id=loaded["site"]["id"], limit=1000)["items"]) == 40
    only_t = get(api, root, device_id=a["id"], keys="t", limit=1000)["items"]
    assert {r["key"] for r in only_t} == {"t"} and len(only_t) == 10
    both = get(api, root, device_id=a["id"], keys="t, h", limit=1000)["items"]
    assert len(both) == 20
    sensor_id = only_t[0]["sensor_id"]
    assert len(get(api, root, sensor_id=sensor_id, limit=1000)["items"]) == 10


def test_start_and_end_are_inclusive(api, root, loaded):
    items = get(api, root, device_id=loaded["a"]["id"], keys="t",
                start="2026-01-01T12:02:00Z", end="2026-01-01T12:04:00Z")["items"]
    assert [r["value"] for r in items] == [4.0, 3.0, 2.0]
    epoch = get(api, root, device_id=loaded["a"]["id"], keys="t", start=T + 120,
                end=(T + 240) * 1000)["items"]
    assert [r["value"] for r in epoch] == [4.0, 3.0, 2.0]


def test_relative_times_and_bad_times(api, root, loaded):
    recent = get(api, root, device_id=loaded["a"]["id"], start="-1h")
    assert recent["items"] == []  # all readings are from January 2026
    assert len(get(api, root, device_id=loaded["a"]["id"], end="now")["items"]) == 20
    bad = api.get("/readings", root, params={"start": "last tuesday"})
    assert bad.status_code == 422 and "start" in bad.json()["detail"]
    backwards = api.get("/readings", root, params={"start": T + 10, "end": T})
    assert backwards.status_code == 422


def test_order_and_shape(api, root, loaded):
    asc = get(api, root, device_id=loaded["a"]["id"], keys="t", order="asc")["items"]
    assert [r["value"] for r in asc] == [float(i) for i in range(10)]
    first = asc[0]
    assert first["ts"] == "2026-01-01T12:00:00Z" and first["device_id"] == loaded["a"]["id"]
    assert first["valid"] is True and first["status"] == "pending" and first["key"] == "t"
    assert isinstance(first["id"], str)
    desc = get(api, root, device_id=loaded["a"]["id"], keys="t")["items"]
    assert [r["value"] for r in desc] == [float(i) for i in reversed(range(10))]


def test_cursor_pages_through_everything_once(api, root, loaded):
    seen, cursor = [], None
    while True:
        params = {"site_id": loaded["site"]["id"], "limit": 7}
        if cursor:
            params["cursor"] = cursor
        page = get(api, root, **params)
        seen.extend(r["id"] for r in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 40 and len(set(seen)) == 40
    skip = get(api, root, site_id=loaded["site"]["id"], limit=7, skip=7)["items"]
    assert [r["id"] for r in skip] == seen[7:14]
    assert api.get("/readings", root, params={"cursor": "garbage"}).status_code == 422


def test_latest_per_sensor(api, root, loaded):
    latest = api.get("/readings/latest", root, params={"device_id": loaded["a"]["id"]}).json()
    assert sorted((r["key"], r["value"]) for r in latest["items"]) == [("h", 109.0), ("t", 9.0)]
    site = api.get("/readings/latest", root, params={"site_id": loaded["site"]["id"],
                                                     "keys": "t"}).json()
    assert len(site["items"]) == 2 and {r["value"] for r in site["items"]} == {9.0}
    assert api.get("/readings/latest", root).status_code == 422


def test_latest_is_paged_by_sensor_like_reading_lists(api, root):
    """Issue 9: 20,000 keys left 20,000 sensors on one device and /readings/latest answered
    them all at once. It pages like reading lists: limit (default 100, max 10000), cursor."""
    device = api.device(root)
    key = device_key(device["api_key"])
    for start in (0, 100, 200):  # 250 sensors, created at most 100 a request
        values = {f"k{i:03d}": float(i) for i in range(start, min(start + 100, 250))}
        assert api.post("/readings", key, json={"ts": T, "values": values}).status_code == 202
    params = {"device_id": device["id"]}
    first = api.get("/readings/latest", root, params=params).json()
    assert len(first["items"]) == 100 and first["next_cursor"]
    seen, cursor = [], None
    while True:
        page = api.get("/readings/latest", root,
                       params={**params, "limit": 60, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        seen += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert [r["key"] for r in seen] == [f"k{i:03d}" for i in range(250)]
    ids = [r["sensor_id"] for r in seen]
    assert ids == sorted(ids) and first["items"] == seen[:100]
    for bad in ({"limit": 0}, {"limit": 10_001}, {"cursor": "garbage"},
                {"cursor": first["next_cursor"][1:]}):
        response = api.get("/readings/latest", root, params={**params, **bad})
        assert response.status_code == 422, (bad, response.text)


def test_latest_leaves_invalid_readings_out_unless_asked(api, root, loaded):
    a = loaded["a"]
    newer = {"readings": [{"key": "t", "value": 50.0, "tags": ["suspect"], "ts": T + 600}]}
    assert api.post("/readings", device_key(a["api_key"]), json=newer).status_code == 202
    latest = api.get("/readings/latest", root, params={"device_id": a["id"]}).json()["items"]
    assert sorted((r["key"], r["value"], r["valid"]) for r in latest) == [
        ("h", 109.0, True), ("t", 9.0, True)]
    newest_first = get(api, root, device_id=a["id"], limit=2)["items"]  # ts, then sensor desc
    assert latest == newest_first[::-1]  # the very same readings, in sensor order
    everything = api.get("/readings/latest", root, params={
        "device_id": a["id"], "keys": "t", "include_invalid": True}).json()["items"]
    assert [(r["value"], r["valid"], r["tags"]) for r in everything] == [
        (50.0, False, ["suspect"])]


def test_latest_of_another_organization_is_empty(two_tenants):
    t = two_tenants
    api, root, other, site, device = t["api"], t["root"], t["other"], t["site"], t["device"]
    mine = api.get("/readings/latest", root, params={"device_id": device["id"]}).json()
    assert [r["value"] for r in mine["items"]] == [1.0]
    for params in ({"device_id": device["id"]}, {"site_id": site["id"]},
                   {"sensor_id": mine["items"][0]["sensor_id"]}):
        response = api.get("/readings/latest", other, params=params)
        assert response.status_code == 200 and response.json()["items"] == []


def test_one_reading_and_its_review_workflow(api, root, loaded):
    reading = get(api, root, device_id=loaded["a"]["id"], keys="t", limit=1)["items"][0]
    rid = reading["id"]
    assert api.get(f"/readings/{rid}", root).json() == reading
    validated = api.put(f"/readings/{rid}/validate", root)
    assert validated.status_code == 200 and validated.json()["status"] == "validated"
    assert api.put(f"/readings/{rid}/validate", root).status_code == 409
    archived = api.put(f"/readings/{rid}/archive", root)
    assert archived.json()["status"] == "archived"
    assert api.put(f"/readings/{rid}/archive", root).status_code == 409
    assert api.put(f"/readings/{rid}/validate", root).status_code == 409
    by_status = get(api, root, device_id=loaded["a"]["id"], status="archived")["items"]
    assert [r["id"] for r in by_status] == [rid]
    _, member = api.add_user(root, "member")
    assert api.put(f"/readings/{rid}/archive", member).status_code == 403
    assert api.get("/readings/not-an-id", root).status_code == 404


def test_edit_revalidates_and_updates_latest(api, root, loaded):
    device = loaded["a"]
    sensor = get(api, root, device_id=device["id"], keys="t", limit=1)["items"][0]["sensor_id"]
    api.patch(f"/sensors/{sensor}", root, json={"valid_max": 100})
    newest = get(api, root, sensor_id=sensor, limit=1)["items"][0]
    changed = api.put(f"/readings/{newest['id']}", root, json={"value": 500})
    assert changed.status_code == 200 and changed.json()["valid"] is False
    assert api.get(f"/sensors/{sensor}", root).json()["last_value"] == 8.0
    _, viewer = api.add_user(root, "viewer")
    assert api.get(f"/readings/{newest['id']}", viewer).status_code == 404
    tagged = api.put(f"/readings/{newest['id']}", root, json={"value": 9, "tags": ["ok"]})
    assert tagged.json()["valid"] is True and tagged.json()["tags"] == ["ok"]
    assert api.get(f"/sensors/{sensor}", root).json()["last_value"] == 9.0


def test_bulk_review_counts_what_changed(api, root, loaded):
    device = loaded["a"]["id"]
    first = api.post("/readings/review", root, json={
        "action": "validate", "device_id": device, "start": T, "end": T + 120})
    assert first.json() == {"count": 6}
    again = api.post("/readings/review", root, json={
        "action": "validate", "device_id": device, "start": T, "end": T + 300})
    assert again.json() == {"count": 6}  # the first 6 are validated already
    archived = api.post("/readings/review", root, json={
        "action": "archive", "device_id": device, "start": "2026-01-01T00:00:00Z",
        "end": "2026-01-02T00:00:00Z"})
    assert archived.json() == {"count": 20}
    assert api.post("/readings/review", root, json={"action": "validate"}).status_code == 422
    assert api.post("/readings/review", root, json={"action": "smash", "device_id": device,
                                                    "start": T}).status_code == 422


def test_delete_by_filters_really_deletes(api, root, loaded):
    a = loaded["a"]
    assert api.delete("/readings", root, params={"device_id": a["id"]}).status_code == 422
    deleted = api.delete("/readings", root, params={"device_id": a["id"],
                                                    "start": T + 300, "end": T + 540})
    assert deleted.json() == {"count": 10}
    left = get(api, root, device_id=a["id"], limit=1000)["items"]
    assert len(left) == 10 and max(r["ts"] for r in left) == "2026-01-01T12:04:00Z"
    latest = api.get("/readings/latest", root, params={"device_id": a["id"]}).json()["items"]
    assert {r["value"] for r in latest} == {4.0, 104.0}
    sensor = api.get(f"/sensors/{left[0]['sensor_id']}", root).json()
    assert sensor["last_ts"] == "2026-01-01T12:04:00Z"
    stats = api.get(f"/sites/{loaded['site']['id']}/statistics", root).json()
    assert stats["total_readings"] == 30
    assert stats["latest_reading_ts"] == "2026-01-01T12:09:00Z"  # device b still has 12:09
    one = left[0]["id"]
    assert api.delete(f"/readings/{one}", root).status_code == 204
    assert api.get(f"/readings/{one}", root).status_code == 404


def test_deleting_a_device_deletes_its_readings(api, root, loaded):
    c = loaded["c"]
    sensor_ids = {r["sensor_id"] for r in get(api, root, device_id=c["id"])["items"]}
    api.delete(f"/devices/{c['id']}", root)
    for sensor_id in sensor_ids:
        assert get(api, root, sensor_id=sensor_id)["items"] == []
