"""Bad input on the alert rules and alerts endpoints (both backends): each a 4xx
``application/problem+json`` with its stable code, naming what is wrong; never a 500."""

import pytest

from tests.alerts.conftest import eventually
from tests.alerts.test_alerts import alerts_of, make_rule, send
from tests.alerts.test_rules_api import rule


def problem(response, status: int, code: str, *named: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code and body["status"] == status
    for name in named:
        assert name in response.text, (name, response.text)
    return body


@pytest.mark.parametrize(("fields", "named"), [
    ({"condition": "outside", "threshold_high": 40, "threshold": None}, "threshold"),
    ({"condition": "outside", "threshold": 50, "threshold_high": 40}, "threshold_high"),
    ({"condition": "inside"}, "threshold_high"),
    ({"condition": "GT"}, "condition"),
    ({"condition": None}, "condition"),
    ({"name": ""}, "name"),
    ({"for_seconds": 10**9}, "for_seconds"),
    ({"threshold_high": "high", "condition": "outside"}, "threshold_high"),
    ({"device_id": "mine"}, "device_id"),
    ({"device_id": 10**9}, "device_id"),
    ({"site_id": 10**9}, "site_id"),
    ({"group_id": 10**9}, "group_id"),
    ({"enabled": "perhaps"}, "enabled"),
    ({"webhook_url": "not a url"}, "webhook_url"),
])
def test_a_bad_rule_names_its_field(api, root, fields, named):
    body = {k: v for k, v in rule(**fields).items() if v is not None or k == "condition"}
    if fields.get("condition", "") is None:
        body.pop("condition")  # left out: required
    errors = problem(api.post("/alert-rules", root, json=body), 422, "validation_error",
                     named)
    assert errors["errors"] and all("loc" in e and "msg" in e for e in errors["errors"])


def test_bodies_that_are_not_a_rule(api, root):
    as_json = {**root, "Content-Type": "application/json"}
    for content in (b"", b"[]", b"not json", b'{"name": "x", "threshold": NaN, "key": "t", '
                                              b'"condition": "gt"}'):
        response = api.request("POST", "/alert-rules", as_json, content=content)
        problem(response, 422, "validation_error")
    nan = api.request("POST", "/alert-rules", as_json, content=b'{"name": "x", "key": "t", '
                      b'"condition": "gt", "threshold": Infinity}')
    assert nan.status_code == 422


def test_bad_changes_to_a_rule(api, root):
    created = api.post("/alert-rules", root, json=rule()).json()
    path = f"/alert-rules/{created['id']}"
    problem(api.patch(path, root, json={"colour": "red"}), 422, "validation_error", "colour")
    problem(api.patch(path, root, json={"condition": "between"}), 422, "validation_error",
            "condition")
    problem(api.patch(path, root, json={"threshold": None}), 422, "validation_error",
            "threshold")
    problem(api.patch(path, root, json={"condition": "inside", "threshold_high": 1}), 422,
            "validation_error", "threshold_high")
    problem(api.patch(path, root, json={"device_id": 10**9}), 422, "validation_error",
            "device_id")
    problem(api.patch(path, root, json={"site_id": 1, "group_id": 1}), 422,
            "validation_error", "at most one")
    problem(api.patch("/alert-rules/abc", root, json={}), 422, "validation_error")
    problem(api.patch(f"/alert-rules/{10**9}", root, json={"threshold": 1}), 404, "not_found")
    problem(api.delete(f"/alert-rules/{10**9}", root), 404, "not_found")
    problem(api.get("/alert-rules/abc", root), 422, "validation_error")
    assert api.get(path, root).json()["threshold"] == 30  # nothing of it was applied


def test_a_scope_in_another_organization_is_no_such_device(api, root):
    """A rule naming another organization's device, site or group is told exactly what it
    is told for one that does not exist: nothing about theirs shows."""
    _, tenant = api.signup_tenant_owner()
    theirs = api.device(tenant)
    site = api.post("/sites", tenant, json={"name": "their plant"}).json()
    for field, value in (("device_id", theirs["id"]), ("site_id", site["id"])):
        foreign = problem(api.post("/alert-rules", root, json=rule(**{field: value})), 422,
                          "validation_error", field)
        missing = problem(api.post("/alert-rules", root, json=rule(**{field: 10**9})), 422,
                          "validation_error", field)
        assert foreign["detail"].replace(str(value), "N") == missing["detail"].replace(
            str(10**9), "N")
    mine = api.post("/alert-rules", root, json=rule()).json()
    problem(api.patch(f"/alert-rules/{mine['id']}", root, json={"device_id": theirs["id"]}),
            422, "validation_error", "device_id")
    # and the alerts list filtered by their device shows nothing, as for any unknown id
    assert alerts_of(api, root, device_id=theirs["id"]) == []


@pytest.mark.parametrize(("params", "named"), [
    ({"state": "open"}, "state"),
    ({"severity": "apocalyptic"}, "severity"),
    ({"device_id": "abc"}, "device_id"),
    ({"rule_id": "x"}, "rule_id"),
    ({"limit": 5000}, "limit"),
    ({"offset": -1}, "offset"),
    ({"status": "active"}, "status"),  # a misspelt filter never means "everything"
])
def test_bad_alert_filters(api, root, params, named):
    problem(api.get("/alerts", root, params=params), 422, "validation_error", named)


def test_bad_alert_ids_and_lifecycle(api, root):
    for method, path in (("GET", "/alerts/abc"), ("POST", "/alerts/abc/acknowledge"),
                         ("POST", "/alerts/abc/resolve")):
        problem(api.request(method, path, root), 422, "validation_error")
    for method, path in (("GET", f"/alerts/{10**9}"), ("POST", f"/alerts/{10**9}/acknowledge"),
                         ("POST", f"/alerts/{10**9}/resolve")):
        problem(api.request(method, path, root), 404, "not_found")
    device = api.device(root)
    made = make_rule(api, root, device_id=device["id"])
    send(api, device, 70)
    alert = eventually(lambda: alerts_of(api, root, rule_id=made["id"]))[0]
    resolved = api.post(f"/alerts/{alert['id']}/resolve", root)
    assert resolved.status_code == 200, resolved.text
    problem(api.post(f"/alerts/{alert['id']}/resolve", root), 409, "conflict")
    problem(api.post(f"/alerts/{alert['id']}/acknowledge", root), 409, "conflict")
