"""Retention removes readings older than the organization's retention_days."""

from datetime import timedelta

from telemetra.ingest.retention import apply_retention
from telemetra.kit.timeutil import utcnow
from tests.helpers import device_key


def test_old_readings_go_and_recent_ones_stay(api, root, client, backend):
    device = api.device(root)
    now = utcnow()
    old = [{"ts": (now - timedelta(days=days)).isoformat(), "values": {"t": days}}
           for days in (200, 100, 40)]
    recent = [{"ts": (now - timedelta(days=days)).isoformat(), "values": {"t": days}}
              for days in (20, 1)]
    api.post("/readings", device_key(device["api_key"]), json=old + recent)
    api.patch("/organizations/me", root, json={"retention_days": 30})

    state = client.app.state
    result = client.portal.call(apply_retention, state.engine, state.partitions, now)

    left = api.get("/readings", root, params={"device_id": device["id"]}).json()["items"]
    assert sorted(r["value"] for r in left) == [1.0, 20.0]
    if backend == "postgresql":
        # Every month that ended more than 30 days ago is dropped whole.
        assert result["partitions_dropped"]
    assert result["rows_deleted"] + len(result["partitions_dropped"]) > 0
    sensor = api.get("/sensors", root, params={"device_id": device["id"]}).json()["items"][0]
    assert sensor["last_value"] == 1.0
