"""Commands: queued by members, polled and reported by the device, cancelled, expired."""

import time
from datetime import datetime, timedelta

from telemetra.commands import service
from telemetra.commands.events import CommandQueued
from telemetra.kit.timeutil import utcnow
from tests.helpers import device_key


def send(api, headers, device_id, **body):
    response = api.post(f"/devices/{device_id}/commands", headers,
                        json={"name": "reboot", **body})
    assert response.status_code == 201, response.text
    return response.json()


def poll(api, device, **params):
    response = api.get(f"/devices/{device['id']}/commands", device_key(device["api_key"]),
                       params=params)
    assert response.status_code == 200, response.text
    return response.json()


def history(api, headers, device_id, **params):
    response = api.get(f"/devices/{device_id}/commands", headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def report(api, headers, device_id, command_id, **body):
    return api.patch(f"/devices/{device_id}/commands/{command_id}", headers, json=body)


def in_transaction(client, work):
    """Run ``work(conn)`` in a committed transaction on the app's own engine and loop."""
    async def run():
        async with client.app.state.engine.begin() as conn:
            return await work(conn)

    return client.portal.call(run)


def test_create_queues_a_command(api, root):
    device = api.device(root)
    me = api.get("/auth/me", root).json()
    command = send(api, root, device["id"], name="relay/1:on", params={"pulse_ms": 500})
    assert command["status"] == "queued" and command["name"] == "relay/1:on"
    assert command["params"] == {"pulse_ms": 500} and command["device_id"] == device["id"]
    assert command["created_by"] == me["id"] and command["result"] is None
    assert command["expires_at"] is None and command["delivered_at"] is None
    assert command["completed_at"] is None and command["created_at"].endswith("Z")
    shown = api.get(f"/devices/{device['id']}/commands/{command['id']}", root)
    assert shown.status_code == 200 and shown.json() == command
    assert send(api, root, device["id"])["params"] == {}  # no params: an empty object


def test_ttl_sets_expires_at_from_created_at(api, root):
    device = api.device(root)
    command = send(api, root, device["id"], ttl_seconds=90)
    created = datetime.fromisoformat(command["created_at"])
    assert datetime.fromisoformat(command["expires_at"]) - created == timedelta(seconds=90)


def test_device_poll_hands_out_pending_once_oldest_first(api, root):
    device = api.device(root)
    first = send(api, root, device["id"], name="first")
    second = send(api, root, device["id"], name="second")
    got = poll(api, device)
    assert [c["id"] for c in got["items"]] == [first["id"], second["id"]]
    assert got["total"] == 2 and got["limit"] == 50 and got["offset"] == 0
    assert all(c["status"] == "delivered" and c["delivered_at"] for c in got["items"])
    assert poll(api, device) == {"items": [], "total": 0, "limit": 50, "offset": 0}
    shown = api.get(f"/devices/{device['id']}/commands/{first['id']}", root).json()
    assert shown["status"] == "delivered"
    # Polling is contact from the device.
    assert api.get(f"/devices/{device['id']}/status", root).json()["online"] is True


def test_poll_takes_one_page_and_total_says_more_wait(api, root):
    device = api.device(root)
    ids = [send(api, root, device["id"])["id"] for _ in range(3)]
    got = poll(api, device, limit=2)
    assert [c["id"] for c in got["items"]] == ids[:2] and got["total"] == 3
    got = poll(api, device, limit=2)
    assert [c["id"] for c in got["items"]] == ids[2:] and got["total"] == 1


def test_device_reports_success_and_history_shows_it(api, root):
    device = api.device(root)
    command = send(api, root, device["id"])
    poll(api, device)
    done = report(api, device_key(device["api_key"]), device["id"], command["id"],
                  status="succeeded", result={"uptime": 3, "log": ["ok"]})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "succeeded" and done.json()["completed_at"]
    assert done.json()["result"] == {"uptime": 3, "log": ["ok"]}
    listed = history(api, root, device["id"], status="succeeded")
    assert [c["id"] for c in listed["items"]] == [command["id"]] and listed["total"] == 1
    assert listed["items"][0]["result"] == {"uptime": 3, "log": ["ok"]}
    assert history(api, root, device["id"], status="delivered")["total"] == 0


def test_acknowledging_twice_is_a_no_op_and_a_direct_outcome_sets_delivered_at(api, root):
    device = api.device(root)
    headers = device_key(device["api_key"])
    command = send(api, root, device["id"])
    acked = report(api, headers, device["id"], command["id"], status="delivered")
    assert acked.status_code == 200 and acked.json()["status"] == "delivered"
    again = report(api, headers, device["id"], command["id"], status="delivered")
    assert again.status_code == 200 and again.json() == acked.json()
    other = send(api, root, device["id"])
    failed = report(api, headers, device["id"], other["id"], status="failed",
                    result="relay stuck")
    assert failed.status_code == 200, failed.text
    body = failed.json()
    assert body["status"] == "failed" and body["result"] == "relay stuck"
    assert body["delivered_at"] and body["completed_at"]


def test_history_is_newest_first_with_a_status_filter(api, root):
    device = api.device(root)
    old, new = send(api, root, device["id"]), send(api, root, device["id"])
    api.delete(f"/devices/{device['id']}/commands/{old['id']}", root)
    listed = history(api, root, device["id"])
    assert [c["id"] for c in listed["items"]] == [new["id"], old["id"]]
    assert [c["id"] for c in history(api, root, device["id"], status="queued")["items"]] == [
        new["id"]]
    assert [c["id"] for c in history(api, root, device["id"], status="cancelled")["items"]] == [
        old["id"]]
    bad = api.get(f"/devices/{device['id']}/commands", root, params={"status": "done"})
    assert bad.status_code == 422


def test_cancel_and_the_conflicts_of_finished_commands(api, root):
    device = api.device(root)
    headers = device_key(device["api_key"])
    command = send(api, root, device["id"])
    cancelled = api.delete(f"/devices/{device['id']}/commands/{command['id']}", root)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["completed_at"]
    assert poll(api, device)["items"] == []  # a cancelled command is not handed out
    late = report(api, headers, device["id"], command["id"], status="succeeded")
    assert late.status_code == 409 and late.json()["code"] == "conflict"
    assert "cancelled" in late.json()["detail"]
    twice = api.delete(f"/devices/{device['id']}/commands/{command['id']}", root)
    assert twice.status_code == 409 and "cancelled" in twice.json()["detail"]

    done = send(api, root, device["id"])
    poll(api, device)
    assert report(api, headers, device["id"], done["id"], status="succeeded").status_code == 200
    refused = api.delete(f"/devices/{device['id']}/commands/{done['id']}", root)
    assert refused.status_code == 409 and "succeeded" in refused.json()["detail"]
    for status in ("delivered", "failed", "succeeded"):
        again = report(api, headers, device["id"], done["id"], status=status)
        assert again.status_code == 409 and "succeeded" in again.json()["detail"]
    shown = api.get(f"/devices/{device['id']}/commands/{done['id']}", root).json()
    assert shown["status"] == "succeeded"

    delivered = send(api, root, device["id"])
    poll(api, device)  # a delivered command may still be cancelled
    cancelled = api.delete(f"/devices/{device['id']}/commands/{delivered['id']}", root)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"


def test_an_expired_command_is_not_handed_out_and_expire_due_records_it(api, root, client):
    device = api.device(root)
    headers = device_key(device["api_key"])
    short = send(api, root, device["id"], ttl_seconds=1)
    lasting = send(api, root, device["id"])
    time.sleep(1.1)
    assert [c["id"] for c in poll(api, device)["items"]] == [lasting["id"]]
    # Past its expiry it reads as expired at once, before the job has recorded it...
    shown = api.get(f"/devices/{device['id']}/commands/{short['id']}", root).json()
    assert shown["status"] == "expired" and shown["completed_at"] == short["expires_at"]
    expired = history(api, root, device["id"], status="expired")
    assert [c["id"] for c in expired["items"]] == [short["id"]]
    assert history(api, root, device["id"], status="queued")["total"] == 0
    late = report(api, headers, device["id"], short["id"], status="succeeded")
    assert late.status_code == 409 and "expired" in late.json()["detail"]
    assert api.delete(f"/devices/{device['id']}/commands/{short['id']}", root).status_code == 409
    # ...and the job records it, leaving what users saw unchanged and never-expiring ones be.
    assert in_transaction(client, lambda conn: service.expire_due(conn, utcnow())) == 1
    assert api.get(f"/devices/{device['id']}/commands/{short['id']}", root).json() == shown
    far = utcnow() + timedelta(days=3650)
    assert in_transaction(client, lambda conn: service.expire_due(conn, far)) == 0
    shown = api.get(f"/devices/{device['id']}/commands/{lasting['id']}", root).json()
    assert shown["status"] == "delivered"


def test_expire_due_expires_delivered_commands_too(api, root, client):
    device = api.device(root)
    command = send(api, root, device["id"], ttl_seconds=3600)
    poll(api, device)
    later = utcnow() + timedelta(hours=2)
    assert in_transaction(client, lambda conn: service.expire_due(conn, later)) == 1
    shown = api.get(f"/devices/{device['id']}/commands/{command['id']}", root).json()
    assert shown["status"] == "expired" and shown["completed_at"] == command["expires_at"]


def test_pending_for_device_republishes_without_delivering(api, root, client):
    device = api.device(root)
    first, second = send(api, root, device["id"]), send(api, root, device["id"])
    short = send(api, root, device["id"], ttl_seconds=60)
    api.delete(f"/devices/{device['id']}/commands/{second['id']}", root)
    later = utcnow() + timedelta(seconds=120)  # when the short-lived one has expired
    rows = in_transaction(client, lambda conn: service.pending_for_device(conn, device["id"],
                                                                          later))
    assert [row["id"] for row in rows] == [first["id"]]
    assert service.command_message(rows[0]) == {
        "id": first["id"], "device_id": device["id"], "name": "reboot", "params": {},
        "created_at": first["created_at"], "expires_at": None}
    # Nothing changed: the device still gets them by polling (the short one has not expired yet).
    assert [c["id"] for c in poll(api, device)["items"]] == [first["id"], short["id"]]


def test_a_member_may_report_for_the_device_without_it_counting_as_contact(api, root):
    device = api.device(root)
    command = send(api, root, device["id"])
    done = report(api, root, device["id"], command["id"], status="failed", result=None)
    assert done.status_code == 200 and done.json()["status"] == "failed"
    assert api.get(f"/devices/{device['id']}/status", root).json()["last_seen"] is None


def test_a_device_key_reaches_only_its_own_commands(api, root):
    mine, other = api.device(root), api.device(root)
    headers = device_key(mine["api_key"])
    theirs = send(api, root, other["id"])
    assert api.get(f"/devices/{other['id']}/commands", headers).status_code == 404
    one = api.get(f"/devices/{other['id']}/commands/{theirs['id']}", headers)
    assert one.status_code == 404 and one.json()["code"] == "not_found"
    assert report(api, headers, other["id"], theirs["id"], status="succeeded").status_code == 404
    # Another device's command through one's own device id is not found either.
    assert api.get(f"/devices/{mine['id']}/commands/{theirs['id']}", headers).status_code == 404
    assert report(api, headers, mine["id"], theirs["id"], status="failed").status_code == 404
    assert api.get(f"/devices/{mine['id']}/commands/{theirs['id']}", root).status_code == 404
    shown = api.get(f"/devices/{other['id']}/commands/{theirs['id']}", root).json()
    assert shown["status"] == "queued"
    # A device neither sends nor cancels commands.
    assert api.post(f"/devices/{mine['id']}/commands", headers,
                    json={"name": "x"}).status_code == 403
    mine_command = send(api, root, mine["id"])
    cancel = api.delete(f"/devices/{mine['id']}/commands/{mine_command['id']}", headers)
    assert cancel.status_code == 403


def test_a_viewer_reads_but_cannot_send_cancel_or_report(api, root):
    _, viewer = api.add_user(root, "viewer")
    device = api.device(root)
    command = send(api, root, device["id"])
    assert api.post(f"/devices/{device['id']}/commands", viewer,
                    json={"name": "reboot"}).status_code == 403
    assert api.delete(f"/devices/{device['id']}/commands/{command['id']}",
                      viewer).status_code == 403
    assert report(api, viewer, device["id"], command["id"], status="failed").status_code == 403
    assert history(api, viewer, device["id"])["total"] == 1
    shown = api.get(f"/devices/{device['id']}/commands/{command['id']}", viewer).json()
    assert shown["status"] == "queued"  # and reading did not deliver it


def test_unknown_device_or_command_is_404(api, root):
    device = api.device(root)
    assert api.post("/devices/999999/commands", root, json={"name": "x"}).status_code == 404
    assert api.get("/devices/999999/commands", root).status_code == 404
    assert api.get(f"/devices/{device['id']}/commands/999999", root).status_code == 404
    assert api.delete(f"/devices/{device['id']}/commands/999999", root).status_code == 404


def test_invalid_bodies_are_422(api, root):
    device = api.device(root)
    path = f"/devices/{device['id']}/commands"
    for body in ({"name": "re boot"}, {"name": ""}, {"name": "x" * 101}, {"name": "ünï"},
                 {"name": "x", "ttl_seconds": 0}, {"name": "x", "ttl_seconds": 2_592_001},
                 {"name": "x", "params": [1, 2]}, {"name": "x", "extra": 1}, {}):
        response = api.post(path, root, json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["code"] == "validation_error"
    assert history(api, root, device["id"])["total"] == 0
    command = send(api, root, device["id"], name="a-b_c.d:e/f", ttl_seconds=2_592_000)
    for body in ({"status": "queued"}, {"status": "cancelled"}, {"result": 1},
                 {"status": "failed", "extra": 1}):
        response = report(api, root, device["id"], command["id"], **body)
        assert response.status_code == 422, (body, response.text)
    shown = api.get(f"{path}/{command['id']}", root).json()
    assert shown["status"] == "queued"


def test_a_new_command_is_published_after_commit(api, root, client):
    device = api.device(root)
    published = []
    client.app.state.events.subscribe(CommandQueued, published.append)
    command = send(api, root, device["id"], params={"a": 1}, ttl_seconds=60)
    assert [item.message for item in published] == [{
        "id": command["id"], "device_id": device["id"], "name": "reboot", "params": {"a": 1},
        "created_at": command["created_at"], "expires_at": command["expires_at"]}]
    assert api.post("/devices/999999/commands", root, json={"name": "x"}).status_code == 404
    assert api.post(f"/devices/{device['id']}/commands", root, json={}).status_code == 422
    assert len(published) == 1  # nothing that was not stored is published


def test_a_broker_failure_does_not_lose_the_command(api, root, client):
    device = api.device(root)

    def broker_gone(queued):
        raise ConnectionError("broker gone")

    client.app.state.events.subscribe(CommandQueued, broker_gone)
    command = send(api, root, device["id"])
    assert [c["id"] for c in poll(api, device)["items"]] == [command["id"]]
