"""A device's changes reach their subscribers (caches, the broker) only once committed, from
whichever endpoint made them, and never when the change is rolled back."""

import orjson
import pytest
from sqlalchemy import select

from telemetra.connectors.events import ConnectorsChanged
from telemetra.db.tables import devices
from telemetra.devices import service
from telemetra.devices.events import DeviceChanged, DeviceKeyIssued
from telemetra.kit.events import from_message, to_message
from telemetra.orgs.events import InvalidTagsChanged
from telemetra.sensors.events import SensorChanged
from tests.helpers import device_key
from tests.mqtt.conftest import eventually


@pytest.fixture
def published(client) -> list:
    seen: list = []
    client.app.state.events.subscribe(DeviceChanged, seen.append)
    client.app.state.events.subscribe(DeviceKeyIssued, seen.append)
    return seen


def test_a_change_is_published_once_committed_and_never_after_a_rollback(
        api, root, client, published, monkeypatch):
    device = api.device(root)
    path = f"/devices/{device['id']}"
    engine = client.app.state.engine
    read_back: list = []

    async def status_seen_by_another_connection(changed: DeviceChanged) -> None:
        async with engine.connect() as conn:
            read_back.append(await conn.scalar(
                select(devices.c.status).where(devices.c.id == changed.device_id)))

    # On the event loop, where the queued subscriber's task is started.
    client.portal.call(client.app.state.events.subscribe, DeviceChanged,
                       status_seen_by_another_connection)
    published.clear()
    assert api.patch(path, root, json={"status": "maintenance"}).status_code == 200
    assert [(e.device_id, e.status, e.status_changed) for e in published] == [
        (device["id"], "maintenance", True)]
    eventually(lambda: read_back == ["maintenance"])  # published after the commit

    # The update records its event, then fails: rolled back, nothing is published.
    def broken(row, now=None):
        raise RuntimeError("failed after recording")

    monkeypatch.setattr(service, "device_out", broken)
    published.clear()
    assert api.patch(path, root, json={"status": "inactive"}).status_code == 500
    monkeypatch.undo()
    assert published == []
    assert api.get(path, root).json()["status"] == "maintenance"
    assert api.post("/readings", device_key(device["api_key"]),
                    json={"temperature": 21.5}).status_code == 202  # not inactive


def test_a_new_key_stays_in_this_process_and_out_of_logs(api, root, client, published):
    device = api.device(root)
    issued = [e for e in published if isinstance(e, DeviceKeyIssued)]
    assert [(e.device_id, e.key, e.active) for e in issued] == [
        (device["id"], device["api_key"], True)]
    assert issued[0].local_only and device["api_key"] not in repr(issued[0])
    rotated = api.post(f"/devices/{device['id']}/rotate-key", root).json()
    assert [e.key for e in published if isinstance(e, DeviceKeyIssued)][-1] == rotated["api_key"]
    # What may cross to other processes carries no key.
    changed = [e for e in published if isinstance(e, DeviceChanged)]
    assert changed and not getattr(changed[0], "local_only", False)
    assert rotated["api_key"] not in str([to_message(e) for e in changed])


def test_a_heartbeat_reports_a_status_change_only_when_the_status_changes(
        api, root, published):
    device = api.device(root)
    headers = device_key(device["api_key"])
    path = f"/devices/{device['id']}/heartbeat"
    published.clear()
    assert api.post(path, headers, json={"status": "active"}).status_code == 200
    assert api.post(path, headers, json={"firmware_version": "1.2"}).status_code == 200
    assert published == []  # nothing a cache or the broker holds has changed
    assert api.post(path, headers, json={"status": "maintenance"}).status_code == 200
    assert [(e.status, e.status_changed) for e in published] == [("maintenance", True)]


@pytest.mark.parametrize("item", [
    DeviceChanged(1, 2, "inactive", status_changed=True),
    DeviceChanged(1, 2, "active", deleted=True),
    SensorChanged(3, 1, 2, deleted=True),
    InvalidTagsChanged(2),
    ConnectorsChanged(2),
], ids=lambda item: type(item).__name__)
def test_what_other_processes_may_hear_of_survives_the_trip_as_json(item):
    assert not getattr(item, "local_only", False)
    assert from_message(orjson.loads(orjson.dumps(to_message(item)))) == item
