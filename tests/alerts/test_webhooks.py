"""Webhooks against a real local HTTP receiver (both backends): retried until a 2xx with
the same delivery id, signed so the receiver can verify the body, their state shown on the
alert; a 410 disables the rule's webhook."""

from tests.alerts.conftest import eventually, verify
from tests.alerts.test_alerts import alerts_of, make_rule, send

SECRET = "receiver-shared-secret-0123456789"


def test_retried_until_the_receiver_answers_2xx_and_signed(api, root, receiver):
    hook = receiver(statuses=[500, 503])  # fails twice, then succeeds
    device = api.device(root)
    rule = make_rule(api, root, device_id=device["id"], webhook_url=hook.url,
                     webhook_secret=SECRET, severity="critical")
    send(api, device, 42)
    alert = eventually(lambda: alerts_of(api, root, rule_id=rule["id"]))[0]
    assert alert["webhook"]["state"] == "pending"
    eventually(lambda: hook.delivered(), timeout=30)
    attempts = hook.received
    assert [r["status"] for r in attempts] == [500, 503, 200]
    assert len({r["headers"]["X-Telemetra-Delivery"] for r in attempts}) == 1
    body = verify(SECRET, attempts[-1])
    assert attempts[-1]["headers"]["X-Telemetra-Event"] == "alert.fired"
    assert body["event"] == "alert.fired" and body["alert"]["id"] == alert["id"]
    assert body["alert"]["value"] == 42 and body["alert"]["state"] == "active"
    assert body["organization_id"] == api.get("/auth/me", root).json()["organization"]["id"]
    assert body["sent_at"].endswith("Z")
    # a body changed on the way no longer verifies
    tampered = dict(attempts[-1], body=attempts[-1]["body"].replace(b"42", b"43"))
    try:
        verify(SECRET, tampered)
    except AssertionError:
        pass
    else:
        raise AssertionError("a tampered body verified")
    shown = eventually(lambda: api.get(f"/alerts/{alert['id']}", root).json()["webhook"]
                       if api.get(f"/alerts/{alert['id']}", root).json()["webhook"]["state"]
                       == "delivered" else None)
    assert shown["attempts"] == 3 and shown["last_error"] is None
    # every change is delivered, each with its own delivery id
    acked = api.post(f"/alerts/{alert['id']}/acknowledge", root)
    assert acked.status_code == 200
    send(api, device, 10)
    eventually(lambda: len(hook.delivered()) == 3, timeout=30)
    events = [r["headers"]["X-Telemetra-Event"] for r in hook.delivered()]
    assert events == ["alert.fired", "alert.acknowledged", "alert.resolved"]
    assert len({r["headers"]["X-Telemetra-Delivery"] for r in hook.delivered()}) == 3
    last = verify(SECRET, hook.delivered()[-1])
    assert last["alert"]["resolved_by"] == "condition cleared"


def test_a_generated_secret_signs_too(api, root, receiver):
    hook = receiver()
    device = api.device(root)
    rule = make_rule(api, root, device_id=device["id"], webhook_url=hook.url)
    send(api, device, 42)
    request = eventually(lambda: hook.delivered(), timeout=30)[0]
    assert verify(rule["webhook_secret"], request)["event"] == "alert.fired"


def test_the_failing_attempts_are_shown_on_the_alert(api, root, receiver):
    hook = receiver(statuses=[500] * 100)
    device = api.device(root)
    rule = make_rule(api, root, device_id=device["id"], webhook_url=hook.url)
    send(api, device, 42)
    alert = eventually(lambda: alerts_of(api, root, rule_id=rule["id"]))[0]
    webhook = eventually(lambda: (lambda w: w if w["attempts"] >= 2 else None)(
        api.get(f"/alerts/{alert['id']}", root).json()["webhook"]), timeout=30)
    assert webhook["state"] == "pending" and webhook["last_error"] == "HTTP 500"


def test_a_410_disables_the_rules_webhook(api, root, receiver):
    hook = receiver(statuses=[410])
    device = api.device(root)
    rule = make_rule(api, root, device_id=device["id"], webhook_url=hook.url)
    send(api, device, 42)
    alert = eventually(lambda: alerts_of(api, root, rule_id=rule["id"]))[0]
    eventually(lambda: not api.get(f"/alert-rules/{rule['id']}", root).json()["webhook_enabled"],
               timeout=30)
    webhook = api.get(f"/alerts/{alert['id']}", root).json()["webhook"]
    assert webhook["state"] == "failed" and "410" in webhook["last_error"]
    send(api, device, 10)  # resolves: nothing is sent any more
    eventually(lambda: alerts_of(api, root, rule_id=rule["id"])[0]["state"] == "resolved")
    assert len(hook.received) == 1
    # setting the URL again turns it back on
    again = api.patch(f"/alert-rules/{rule['id']}", root, json={"webhook_url": hook.url})
    assert again.status_code == 200 and again.json()["webhook_enabled"] is True
    send(api, device, 43)
    eventually(lambda: hook.delivered(), timeout=30)
