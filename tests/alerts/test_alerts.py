"""Alerts fired by readings and device status, on both backends (a real app with its writer,
events and jobs): once per episode, after for_seconds, resolved when the condition clears or
by users, never for devices in maintenance, scoped to one organization."""

import time

import pytest

from tests.alerts.conftest import eventually
from tests.helpers import device_key


def make_rule(api, headers, **fields) -> dict:
    body = {"name": "too hot", "key": "temperature", "condition": "gt", "threshold": 30,
            **fields}
    response = api.post("/alert-rules", headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def send(api, device, value, key="temperature") -> None:
    response = api.post("/readings", device_key(device["api_key"]), json={key: value})
    assert response.status_code == 202, response.text


def alerts_of(api, headers, **params) -> list:
    response = api.get("/alerts", headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def settle(api, device, headers) -> None:
    """Wait until evaluation has caught up with what was sent: a marker rule on another key
    fires once the batches before it were evaluated (the evaluator takes them in order)."""
    marker = make_rule(api, headers, name="marker", key="marker", threshold=0,
                       device_id=device["id"])
    send(api, device, 1, key="marker")
    eventually(lambda: alerts_of(api, headers, rule_id=marker["id"]))


def test_a_burst_fires_one_alert_which_resolves_when_the_condition_clears(api, root):
    device = api.device(root)
    rule = make_rule(api, root, device_id=device["id"])
    for value in (31, 35, 40, 33, 38):
        send(api, device, value)
    api.post("/readings", device_key(device["api_key"]),
             json=[{"ts": time.time() - n, "values": {"temperature": 50 + n}} for n in range(20)])
    settle(api, device, root)
    fired = alerts_of(api, root, rule_id=rule["id"])
    assert len(fired) == 1
    alert = fired[0]
    assert (alert["state"], alert["value"], alert["threshold"], alert["device_id"],
            alert["key"], alert["severity"]) == ("active", 31, 30, device["id"], "temperature",
                                                 "warning")
    summary = api.get("/analytics/summary", root).json()
    assert summary["active_alerts"] == 2  # this one and the marker's
    send(api, device, 25)
    resolved = eventually(lambda: [a for a in alerts_of(api, root, rule_id=rule["id"])
                                   if a["state"] == "resolved"])
    assert resolved[0]["resolved_by"] == "condition cleared" and resolved[0]["resolved_at"]
    assert api.get("/analytics/summary", root).json()["active_alerts"] == 1
    # a new episode is a new alert
    send(api, device, 45)
    eventually(lambda: len(alerts_of(api, root, rule_id=rule["id"])) == 2)
    detail = api.get(f"/alerts/{alerts_of(api, root, rule_id=rule['id'])[0]['id']}", root)
    assert detail.status_code == 200
    body = detail.json()
    assert body["rule"]["id"] == rule["id"] and body["rule"]["webhook_secret"] is None
    assert body["reading"]["value"] == 45 and body["reading"]["sensor_id"] == body["sensor_id"]
    reading = api.get(f"/readings/{body['reading']['id']}", root)
    assert reading.status_code == 200 and reading.json()["value"] == 45


def test_for_seconds_the_condition_must_hold_that_long(api, root):
    device = api.device(root)
    rule = make_rule(api, root, device_id=device["id"], for_seconds=2)
    send(api, device, 31)
    settle(api, device, root)
    assert alerts_of(api, root, rule_id=rule["id"]) == []  # not yet
    fired = eventually(lambda: alerts_of(api, root, rule_id=rule["id"]), timeout=10)
    assert fired[0]["value"] == 31 and fired[0]["state"] == "active"
    # a condition that clears within for_seconds never fires
    other = api.device(root)
    brief = make_rule(api, root, name="brief", device_id=other["id"], for_seconds=2)
    send(api, other, 31)
    send(api, other, 20)
    time.sleep(3.5)
    settle(api, other, root)
    assert alerts_of(api, root, rule_id=brief["id"]) == []


@pytest.mark.parametrize("condition, threshold, high, hot, cold", [
    ("gte", 30, None, 30, 29.9), ("lt", 5, None, 4, 5), ("lte", 5, None, 5, 5.1),
    ("eq", 7, None, 7, 8), ("ne", 7, None, 8, 7), ("outside", 10, 20, 21, 15),
    ("inside", 10, 20, 15, 21)])
def test_every_condition(api, root, condition, threshold, high, hot, cold):
    device = api.device(root)
    rule = make_rule(api, root, device_id=device["id"], condition=condition,
                     threshold=threshold, threshold_high=high)
    send(api, device, cold)
    settle(api, device, root)
    assert alerts_of(api, root, rule_id=rule["id"]) == []
    send(api, device, hot)
    eventually(lambda: alerts_of(api, root, rule_id=rule["id"]))
    send(api, device, cold)
    eventually(lambda: alerts_of(api, root, rule_id=rule["id"])[0]["state"] == "resolved")


def test_acknowledge_then_resolve(api, root):
    _, viewer = api.add_user(root, role="viewer")
    user, member = api.add_user(root, role="member")
    device = api.device(root)
    rule = make_rule(api, root, device_id=device["id"], severity="critical")
    send(api, device, 99)
    alert = eventually(lambda: alerts_of(api, root, rule_id=rule["id"]))[0]
    assert api.post(f"/alerts/{alert['id']}/acknowledge", viewer).status_code == 403
    acked = api.post(f"/alerts/{alert['id']}/acknowledge", member)
    assert acked.status_code == 200, acked.text
    assert (acked.json()["state"], acked.json()["acknowledged_by"]) == ("acknowledged",
                                                                        user["username"])
    again = api.post(f"/alerts/{alert['id']}/acknowledge", member)
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    assert [a["id"] for a in alerts_of(api, root, state="acknowledged",
                                       severity="critical")] == [alert["id"]]
    assert alerts_of(api, root, state="active", rule_id=rule["id"]) == []
    send(api, device, 100)  # still hot: no second alert while this one is open
    settle(api, device, root)
    assert len(alerts_of(api, root, rule_id=rule["id"])) == 1
    resolved = api.post(f"/alerts/{alert['id']}/resolve", member)
    assert resolved.status_code == 200
    assert (resolved.json()["state"], resolved.json()["resolved_by"]) == ("resolved",
                                                                          user["username"])
    assert api.post(f"/alerts/{alert['id']}/resolve", member).status_code == 409
    assert api.post(f"/alerts/{alert['id']}/acknowledge", member).status_code == 409
    assert alerts_of(api, root, state="resolved", device_id=device["id"])[0]["id"] == alert["id"]


def test_devices_in_maintenance_fire_nothing(api, root):
    device = api.device(root)
    rule = make_rule(api, root)  # the whole organization
    assert api.patch(f"/devices/{device['id']}", root,
                     json={"status": "maintenance"}).status_code == 200
    send(api, device, 90)
    settle(api, api.device(root), root)  # the marker's device is not in maintenance
    assert alerts_of(api, root, rule_id=rule["id"]) == []
    assert api.patch(f"/devices/{device['id']}", root,
                     json={"status": "active"}).status_code == 200
    send(api, device, 91)
    assert eventually(lambda: alerts_of(api, root, rule_id=rule["id"]))[0]["value"] == 91


def test_site_and_group_scopes(api, root):
    site = api.post("/sites", root, json={"name": "greenhouse"}).json()
    group = api.post("/groups", root, json={"name": "ovens"}).json()
    in_site, in_group, elsewhere = (api.device(root, site_id=site["id"]), api.device(root),
                                    api.device(root))
    assert api.post(f"/groups/{group['id']}/devices/{in_group['id']}", root).status_code == 204
    by_site = make_rule(api, root, name="site", site_id=site["id"])
    by_group = make_rule(api, root, name="group", group_id=group["id"])
    for device in (in_site, in_group, elsewhere):
        send(api, device, 50)
    settle(api, elsewhere, root)
    assert [a["device_id"] for a in alerts_of(api, root, rule_id=by_site["id"])] == [
        in_site["id"]]
    assert [a["device_id"] for a in alerts_of(api, root, rule_id=by_group["id"])] == [
        in_group["id"]]
    # membership changes are heard of at once
    assert api.post(f"/groups/{group['id']}/devices/{elsewhere['id']}", root).status_code == 204
    send(api, elsewhere, 51)
    eventually(lambda: len(alerts_of(api, root, rule_id=by_group["id"])) == 2)


def test_invalid_readings_fire_nothing(api, root):
    device = api.device(root)
    rule = make_rule(api, root, device_id=device["id"])
    response = api.post("/readings", device_key(device["api_key"]), json={
        "readings": [{"key": "temperature", "value": 80, "tags": ["suspect"]}]})
    assert response.status_code == 202
    settle(api, device, root)
    assert alerts_of(api, root, rule_id=rule["id"]) == []


def test_offline_rule_with_a_short_timeout(api, root):
    device = api.device(root)
    assert api.patch(f"/devices/{device['id']}", root,
                     json={"offline_after_seconds": 5}).status_code == 200
    rule = make_rule(api, root, name="gone", condition="offline", key=None, threshold=None,
                     device_id=device["id"], severity="critical")
    assert api.post(f"/devices/{device['id']}/heartbeat",
                    device_key(device["api_key"])).status_code == 200
    alert = eventually(lambda: alerts_of(api, root, rule_id=rule["id"]), timeout=20)[0]
    assert (alert["device_id"], alert["sensor_id"], alert["state"]) == (device["id"], None,
                                                                        "active")
    assert api.get(f"/devices/{device['id']}/status", root).json()["online"] is False
    assert api.post(f"/devices/{device['id']}/heartbeat",
                    device_key(device["api_key"])).status_code == 200
    resolved = eventually(lambda: [a for a in alerts_of(api, root, rule_id=rule["id"])
                                   if a["state"] == "resolved"], timeout=20)
    assert resolved[0]["resolved_by"] == "condition cleared"
    # offline again: a second episode, once
    second = eventually(lambda: len(alerts_of(api, root, rule_id=rule["id"])) == 2, timeout=20)
    assert second
    time.sleep(2)
    assert len(alerts_of(api, root, rule_id=rule["id"])) == 2


def test_alerts_are_the_organizations_own(api, root):
    device = api.device(root)
    rule = make_rule(api, root, device_id=device["id"])
    send(api, device, 70)
    alert = eventually(lambda: alerts_of(api, root, rule_id=rule["id"]))[0]
    _, tenant = api.signup_tenant_owner()
    theirs = api.device(tenant)
    their_rule = make_rule(api, tenant)  # organization-wide, in theirs
    assert alerts_of(api, tenant) == []
    assert alerts_of(api, tenant, device_id=device["id"]) == []
    for method, path in (("GET", f"/alerts/{alert['id']}"),
                         ("POST", f"/alerts/{alert['id']}/acknowledge"),
                         ("POST", f"/alerts/{alert['id']}/resolve")):
        response = api.request(method, path, tenant)
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert api.get(f"/alerts/{alert['id']}", root).json()["state"] == "active"
    assert api.get("/analytics/summary", tenant).json()["active_alerts"] == 0
    # their organization-wide rule never sees our readings; it sees theirs
    send(api, device, 71)
    send(api, theirs, 72)
    mine = eventually(lambda: alerts_of(api, tenant, rule_id=their_rule["id"]))
    assert [a["device_id"] for a in mine] == [theirs["id"]]
