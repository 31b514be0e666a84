"""Ingestion over HTTP: every body, duplicates, rejections, validity, limits, sensors."""

import pytest

T = 1767268800  # 2026-01-01T12:00:00Z


def readings_of(api, headers, **params):
    return api.get("/readings", headers, params={"include_invalid": True, "limit": 1000,
                                                 **params}).json()["items"]


@pytest.mark.parametrize("body, expected", [
    ({"temperature": 23.5, "humidity": 60}, {"temperature": 23.5, "humidity": 60.0}),
    ({"ts": T, "values": {"t": 1, "h": 2}}, {"t": 1.0, "h": 2.0}),
    ([{"ts": T, "values": {"t": 1}}, {"ts": T + 1, "values": {"t": 2}}], {"t": 2.0}),
    ({"data": {"t": 5}, "metadata": {"fw": "1"}, "timestamp": T * 1000}, {"t": 5.0}),
    ({"readings": [{"key": "t", "value": 7, "ts": T}, {"sensor_type": "h", "value": 8}]},
     {"t": 7.0, "h": 8.0}),
    ({"sensor_type": "temperature", "value": 22.5, "unit": "°C"}, {"temperature": 22.5}),
    ([{"sensor_type": "a", "value": 1}, {"sensor_type": "b", "value": 0}], {"a": 1.0, "b": 0.0}),
    ({"time": T, "value": [157, 42, 76, 190]}, {"value": -0.19938130676746368}),
    ([{"time": T, "value": [0, 0, 128, 63]}, {"time": T + 1, "value": [0, 0, 0, 64]}],
     {"value": 2.0}),
])
def test_every_body_is_stored(api, root, device, key, body, expected):
    response = api.post("/readings", key, json=body)
    assert response.status_code == 202, response.text
    assert response.json()["rejected"] == []
    latest = api.get("/readings/latest", root, params={"device_id": device["id"]}).json()
    assert {r["key"]: r["value"] for r in latest["items"]} == expected


def test_accepted_counts_and_duplicates_are_not_stored_twice(api, root, device, key):
    body = {"ts": T, "values": {"t": 1, "h": 2}}
    assert api.post("/readings", key, json=body).json() == {"accepted": 2, "duplicates": 0,
                                                            "rejected": []}
    again = api.post("/readings", key, json={"ts": T, "values": {"t": 9, "h": 2, "new": 3}})
    assert again.json() == {"accepted": 1, "duplicates": 2, "rejected": []}
    stored = readings_of(api, root, device_id=device["id"])
    assert sorted((r["key"], r["value"]) for r in stored) == [("h", 2.0), ("new", 3.0),
                                                              ("t", 1.0)]


def test_rejections_are_per_reading_with_a_reason(api, device, key):
    response = api.post("/readings", key, json={"readings": [
        {"key": "t", "value": 1}, {"key": "t2", "value": "hot"},
        {"key": "t3", "value": 1, "ts": "whenever"}]})
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 1
    assert body["rejected"] == [{"index": 1, "reason": "string value", "key": "t2"},
                                {"index": 2, "reason": "invalid timestamp", "key": "t3"}]


def test_nan_is_rejected_per_reading_never_a_500(api, key):
    response = api.post("/readings", {**key, "Content-Type": "application/json"},
                        content=b'{"t": NaN, "u": 1}')
    assert response.status_code == 202
    assert response.json()["rejected"] == [{"index": 0, "reason": "non-finite value",
                                            "key": "t"}]


@pytest.mark.parametrize("raw", [b"not json", b'"text"', b"{}", b"[]",
                                 b'{"nested": {"a": 1}}'])
def test_a_body_that_is_no_format_is_a_422_naming_the_formats(api, key, raw):
    response = api.post("/readings", {**key, "Content-Type": "application/json"}, content=raw)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "expected" in response.json()["detail"] or "no readings" in response.json()["detail"]


def test_a_body_over_the_limit_is_413(api, key):
    response = api.post("/readings", {**key, "Content-Type": "application/json"},
                        content=b"[" + b"1," * 600_000 + b"1]")
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"


def test_unknown_keys_create_sensors_with_guessed_type_and_unit(api, root, device, key):
    api.post("/readings", key, json={"temperature": 20, "co2": 600, "gizmo": 1})
    api.post("/readings", key, json={"sensor_type": "flux", "value": 1, "unit": "Wb"})
    found = {s["key"]: (s["type"], s["unit"]) for s in
             api.get("/sensors", root, params={"device_id": device["id"]}).json()["items"]}
    assert found == {"temperature": ("temperature", "°C"), "co2": ("co2", "ppm"),
                     "gizmo": ("other", None), "flux": ("other", "Wb")}


def test_valid_range_and_invalid_tags_mark_readings_invalid(api, root, device, key):
    sensor = api.post("/sensors", root, json={"device_id": device["id"], "key": "t",
                                              "valid_min": 0, "valid_max": 50}).json()
    api.post("/readings", key, json={"readings": [
        {"key": "t", "value": 20, "ts": T},
        {"key": "t", "value": 99, "ts": T + 1},
        {"key": "t", "value": 21, "ts": T + 2, "tags": ["suspect"]},
        {"key": "t", "value": 22, "ts": T + 3, "tags": ["Suspect"]},  # case-sensitive
    ]})
    _, member = api.add_user(root, "member")
    visible = api.get("/readings", member, params={"sensor_id": sensor["id"]}).json()["items"]
    assert sorted(r["value"] for r in visible) == [20.0, 22.0]
    everything = readings_of(api, root, sensor_id=sensor["id"])
    assert {r["value"]: r["valid"] for r in everything} == {20.0: True, 99.0: False,
                                                            21.0: False, 22.0: True}
    refused = api.get("/readings", member, params={"include_invalid": True})
    assert refused.status_code == 403


def test_organization_invalid_tags_are_configurable(api, root, device, key):
    api.patch("/organizations/me", root, json={"invalid_tags": ["calibrating"]})
    # The ingest path caches the organization's tags; a fresh app sees the change at once.
    api.post("/readings", key, json={"readings": [
        {"key": "x", "value": 1, "ts": T, "tags": ["suspect"]},
    ]})
    stored = readings_of(api, root, device_id=device["id"])
    assert stored[0]["valid"] is True


def test_sensor_latest_value_follows_the_newest_valid_reading(api, root, device, key):
    api.post("/readings", key, json=[{"ts": T + 10, "values": {"t": 2}},
                                     {"ts": T, "values": {"t": 1}}])
    sensor = api.get("/sensors", root, params={"device_id": device["id"]}).json()["items"][0]
    assert sensor["last_value"] == 2.0 and sensor["last_ts"] == "2026-01-01T12:00:10Z"
    api.post("/readings", key, json={"ts": T + 5, "values": {"t": 3}})  # older: no change
    sensor = api.get(f"/sensors/{sensor['id']}", root).json()
    assert sensor["last_value"] == 2.0


def test_a_member_may_send_readings_for_a_device_of_the_organization(api, root, device):
    _, member = api.add_user(root, "member")
    _, viewer = api.add_user(root, "viewer")
    ok = api.post("/readings", member, params={"device_id": device["id"]}, json={"t": 1})
    assert ok.status_code == 202
    by_path = api.post(f"/devices/{device['id']}/readings", member, json={"t": 2})
    assert by_path.status_code == 202
    assert api.post("/readings", member, json={"t": 1}).status_code == 422  # no device named
    assert api.post("/readings", viewer, params={"device_id": device["id"]},
                    json={"t": 1}).status_code == 403
    assert api.post("/readings", member, params={"device_id": 999999},
                    json={"t": 1}).status_code == 404


def test_a_device_key_sends_only_for_its_own_device(api, root, device, key):
    other = api.device(root)
    assert api.post(f"/devices/{other['id']}/readings", key, json={"t": 1}).status_code == 404
    assert api.post(f"/devices/{device['id']}/readings", key, json={"t": 1}).status_code == 202
    assert api.post("/readings", json={"t": 1}).status_code == 401
    api.patch(f"/devices/{device['id']}", root, json={"status": "inactive"})
    assert api.post("/readings", key, json={"t": 1}).status_code == 403


def test_timestamps_in_every_form_land_at_the_same_instant(api, root, device, key):
    for i, ts in enumerate([T, T * 1000, "2026-01-01T12:00:00Z", "2026-01-01T13:00:00+01:00",
                            "2026-01-01T12:00:00"]):
        response = api.post("/readings", key, json={"ts": ts, "values": {f"k{i}": i}})
        assert response.json()["accepted"] == 1
    stored = readings_of(api, root, device_id=device["id"])
    assert {r["ts"] for r in stored} == {"2026-01-01T12:00:00Z"}


def test_changing_a_valid_range_applies_to_the_next_reading(api, root, device, key):
    api.post("/readings", key, json={"ts": T, "values": {"t": 10}})
    sensor = api.get("/sensors", root, params={"device_id": device["id"]}).json()["items"][0]
    api.patch(f"/sensors/{sensor['id']}", root, json={"valid_max": 5})
    api.post("/readings", key, json={"ts": T + 1, "values": {"t": 10}})
    stored = readings_of(api, root, sensor_id=sensor["id"], order="asc")
    assert [r["valid"] for r in stored] == [True, False]


def test_usage_counts_readings(api, root, device, key):
    api.post("/readings", key, json={"t": 1, "h": 2})  # now
    api.post("/readings", key, json={"ts": T, "values": {"t": 1}})  # January 2026
    usage = api.get("/organizations/me/usage", root).json()
    # Readings stored today, whatever their time: what the daily quota counts.
    assert usage["readings_today"] == 3 and usage["readings_total"] == 3
    assert usage["readings_this_month"] == 3
    assert usage["storage_bytes"] > 0
