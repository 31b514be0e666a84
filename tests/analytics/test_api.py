"""Analytics: the summary and one series across devices."""

from datetime import UTC, datetime, timedelta

from tests.helpers import device_key


def test_summary_counts(api, root):
    a, b = api.device(root), api.device(root)
    api.post("/readings", device_key(a["api_key"]), json={"t": 1, "h": 2})
    api.post("/readings", device_key(b["api_key"]), json={"ts": 1767268800, "values": {"t": 1}})
    summary = api.get("/analytics/summary", root).json()
    assert summary == {"devices_total": 2, "devices_online": 0, "sensors": 3,
                       "readings_today": 2, "active_alerts": 0}


def test_trend_is_one_series_across_devices_of_a_group(api, root):
    t0 = datetime(2026, 4, 1, tzinfo=UTC)
    group = api.post("/groups", root, json={"name": "Greenhouses"}).json()
    devices = [api.device(root) for _ in range(3)]
    for n, device in enumerate(devices):
        body = [{"ts": (t0 + timedelta(minutes=30 * i)).isoformat(),
                 "values": {"temperature": 10.0 * (n + 1) + i}} for i in range(4)]
        api.post("/readings", device_key(device["api_key"]), json=body)
    for device in devices[:2]:
        api.post(f"/groups/{group['id']}/devices/{device['id']}", root)
    trend = api.get("/analytics/trends", root, params={
        "key": "temperature", "interval": "1h", "fn": "avg", "group_id": group["id"],
        "start": t0.isoformat(), "end": (t0 + timedelta(hours=2)).isoformat()}).json()
    assert trend["key"] == "temperature"
    assert [(p["bucket"], p["value"], p["count"]) for p in trend["items"]] == [
        ("2026-04-01T00:00:00Z", 15.5, 4), ("2026-04-01T01:00:00Z", 17.5, 4)]
    everyone = api.get("/analytics/trends", root, params={
        "key": "temperature", "interval": "1d", "fn": "max", "start": t0.isoformat()}).json()
    assert everyone["items"][0]["value"] == 33.0 and everyone["items"][0]["count"] == 12
    bad = api.get("/analytics/trends", root, params={"key": "t", "fn": "mode"})
    assert bad.status_code == 422


def test_a_trend_over_more_than_100000_buckets_is_a_422(api, root):
    response = api.get("/analytics/trends", root, params={
        "key": "t", "interval": "1d", "start": "0001-01-01", "end": "9999-12-31"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["query", "interval"]
    assert "100,000" in response.json()["detail"]
