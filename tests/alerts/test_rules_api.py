"""Alert rules over the API (both backends): admins write, everyone in the organization
reads, bad rules are 422s naming the field, webhook secrets are shown once and stored
encrypted, and another organization's rules are 404s."""


import pytest
from sqlalchemy import select

from telemetra.db.tables import alert_rules
from telemetra.kit.crypto import SecretBox
from tests.helpers import stored_scalar


def rule(device_id=None, **fields) -> dict:
    body = {"name": "too hot", "key": "temperature", "condition": "gt", "threshold": 30}
    if device_id is not None:
        body["device_id"] = device_id
    return {**body, **fields}


def _stored_secret(database_url: str, rule_id: int) -> str:
    return stored_scalar(database_url, select(alert_rules.c.webhook_secret)
                         .where(alert_rules.c.id == rule_id))


def test_webhook_secret_is_shown_once_and_stored_encrypted(api, root, settings):
    created = api.post("/alert-rules", root, json=rule(webhook_url="https://example.com/hook"))
    assert created.status_code == 201, created.text
    secret = created.json()["webhook_secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    rule_id = created.json()["id"]
    assert api.get(f"/alert-rules/{rule_id}", root).json()["webhook_secret"] is None
    listed = api.get("/alert-rules", root).json()
    assert listed["total"] == 1 and listed["items"][0]["webhook_secret"] is None
    stored = _stored_secret(settings.database_url, rule_id)
    assert secret not in stored and stored != secret
    assert SecretBox(settings.secret_key).open(stored) == secret
    # a secret of the user's own, set later, is shown in that answer only
    mine = "a-secret-of-my-own-0123456789"
    changed = api.patch(f"/alert-rules/{rule_id}", root, json={"webhook_secret": mine})
    assert changed.status_code == 200 and changed.json()["webhook_secret"] == mine
    assert SecretBox(settings.secret_key).open(_stored_secret(settings.database_url,
                                                              rule_id)) == mine
    # no webhook, no secret
    plain = api.post("/alert-rules", root, json=rule()).json()
    assert plain["webhook_secret"] is None and plain["webhook_url"] is None


@pytest.mark.parametrize(("fields", "named"), [
    ({"threshold": None}, "threshold"),
    ({"key": None}, "key"),
    ({"condition": "outside"}, "threshold_high"),
    ({"condition": "inside", "threshold_high": 10}, "threshold_high"),
    ({"condition": "sometimes"}, "condition"),
    ({"severity": "apocalyptic"}, "severity"),
    ({"for_seconds": -1}, "for_seconds"),
    ({"threshold": "hot"}, "threshold"),
    ({"webhook_url": "ftp://example.com/x"}, "http"),
    ({"webhook_secret": "short"}, "webhook_secret"),
    ({"site_id": 1, "group_id": 1}, "at most one"),
    ({"colour": "red"}, "colour"),
])
def test_a_bad_rule_is_a_422_naming_what_is_wrong(api, root, fields, named):
    response = api.post("/alert-rules", root, json=rule(**fields))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert named in response.text


def test_offline_rules_need_no_key_nor_threshold(api, root):
    device = api.device(root)
    created = api.post("/alert-rules", root, json={"name": "gone", "condition": "offline",
                                                   "device_id": device["id"]})
    assert created.status_code == 201, created.text
    assert created.json()["key"] is None and created.json()["threshold"] is None


def test_a_change_is_checked_as_a_whole(api, root):
    created = api.post("/alert-rules", root, json=rule()).json()
    bad = api.patch(f"/alert-rules/{created['id']}", root, json={"condition": "outside"})
    assert bad.status_code == 422 and "threshold_high" in bad.text
    good = api.patch(f"/alert-rules/{created['id']}", root,
                     json={"condition": "outside", "threshold_high": 40, "severity": "critical"})
    assert good.status_code == 200, good.text
    assert (good.json()["condition"], good.json()["threshold_high"],
            good.json()["severity"]) == ("outside", 40, "critical")
    assert api.patch(f"/alert-rules/{created['id']}", root,
                     json={"name": None}).status_code == 422


def test_admins_write_and_everyone_reads(api, root):
    _, viewer = api.add_user(root, role="viewer")
    _, member = api.add_user(root, role="member")
    _, admin = api.add_user(root, role="admin")
    for headers in (viewer, member):
        refused = api.post("/alert-rules", headers, json=rule())
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    created = api.post("/alert-rules", admin, json=rule())
    assert created.status_code == 201
    rule_id = created.json()["id"]
    assert api.get(f"/alert-rules/{rule_id}", viewer).status_code == 200
    assert api.patch(f"/alert-rules/{rule_id}", member, json={"threshold": 1}).status_code == 403
    assert api.delete(f"/alert-rules/{rule_id}", member).status_code == 403
    assert api.delete(f"/alert-rules/{rule_id}", admin).status_code == 204
    assert api.get(f"/alert-rules/{rule_id}", viewer).status_code == 404


def test_rules_are_paged_like_every_entity_list(api, root):
    for n in range(3):
        assert api.post("/alert-rules", root, json=rule(name=f"r{n}")).status_code == 201
    listed = api.get("/alert-rules", root, params={"limit": 2, "offset": 1}).json()
    assert (listed["total"], listed["limit"], listed["offset"]) == (3, 2, 1)
    assert [item["name"] for item in listed["items"]] == ["r1", "r2"]
    assert api.get("/alert-rules", root, params={"limit": 0}).status_code == 422


def test_another_organizations_rules_are_not_found(api, root):
    mine = api.post("/alert-rules", root, json=rule()).json()
    _, tenant = api.signup_tenant_owner()
    for call in (lambda: api.get(f"/alert-rules/{mine['id']}", tenant),
                 lambda: api.patch(f"/alert-rules/{mine['id']}", tenant, json={"threshold": 0}),
                 lambda: api.delete(f"/alert-rules/{mine['id']}", tenant)):
        response = call()
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert api.get("/alert-rules", tenant).json()["total"] == 0
    assert api.get(f"/alert-rules/{mine['id']}", root).json()["threshold"] == 30
    # nor may a rule name another organization's device, site or group
    device = api.device(root)
    site = api.post("/sites", root, json={"name": "plant"}).json()
    group = api.post("/groups", root, json={"name": "ovens"}).json()
    for field, value in (("device_id", device["id"]), ("site_id", site["id"]),
                         ("group_id", group["id"])):
        refused = api.post("/alert-rules", tenant, json=rule(**{field: value}))
        assert refused.status_code == 422 and field in refused.text
