"""Device status, alerts and commands on live sockets, and one organization never seeing
another's events on any topic.

Commands go through the real HTTP paths. Device status changes and alerts are recorded by
jobs that are not on this branch yet (the device-status job, alert evaluation), so the test
records their events through a real unit of work in its own process: the relay between
processes (``telemetra.db.relay``) carries them to the server, as it carries every recorded
event.
"""

import asyncio

import httpx

from telemetra.alerts.events import AlertChanged
from telemetra.db.engine import create_engine
from telemetra.db.relay import relay_for
from telemetra.devices.events import DeviceStatusChanged
from telemetra.kit.db import write_transaction
from telemetra.kit.events import EventBus, record
from tests.live.conftest import API, live, reading_time

TOPICS = ("readings", "device-status", "alerts", "commands")


async def record_events(database_url: str, *events) -> None:
    """Commit ``events`` in a unit of work of this process; other processes hear of them."""
    engine = create_engine(database_url)
    bus = EventBus()
    relay = relay_for(engine, bus)
    await relay.start()
    try:
        async with write_transaction(engine, bus) as conn:
            record(conn, *events)
    finally:
        await relay.stop()
        await engine.dispose()


def _status(tenant, online: bool) -> DeviceStatusChanged:
    device = tenant.device
    return DeviceStatusChanged(device["id"], device["organization_id"], device["name"], online,
                               "active", "2026-12-01T10:00:00Z" if not online else None)


def _alert(tenant, key: str = "temperature", change: str = "fired") -> AlertChanged:
    device = tenant.device
    alert = {"id": 7, "rule_id": 3, "rule_name": "too hot", "severity": "critical",
             "state": "active" if change == "fired" else "resolved",
             "device_id": device["id"], "sensor_id": None, "key": key, "value": 41.0,
             "threshold": 40.0, "started_at": "2026-12-01T10:00:00Z"}
    return AlertChanged(change, device["organization_id"], device["id"], alert)


def test_device_status_and_alert_messages(server, root):
    async def scenario():
        async with live(server, root.token) as socket, \
                live(server, root.token, "/ws/alerts") as alerts:
            await alerts.expect("subscribed")
            await socket.subscribe(id="status", topic="device-status",
                                   device_id=root.device["id"])
            await socket.subscribe(id="humidity", topic="alerts", keys=["humidity"])
            await record_events(server.database_url, _status(root, False), _alert(root))
            got = await socket.expect("device-status")
            assert got["subscription"] == "status"
            assert got["device"] == {"id": root.device["id"], "name": root.device["name"],
                                     "online": False, "status": "active",
                                     "last_seen": "2026-12-01T10:00:00Z"}
            fired = await alerts.expect("alert")
            assert fired["subscription"] == "alerts" and fired["change"] == "fired"
            assert fired["alert"]["rule_name"] == "too hot"
            await socket.nothing_pending()  # the humidity subscription heard nothing
            await record_events(server.database_url, _alert(root, "humidity", "resolved"))
            got = await socket.expect("alert")
            assert got["subscription"] == "humidity" and got["change"] == "resolved"

    asyncio.run(scenario())


def test_command_messages_follow_its_status(server, root):
    device = root.device
    commands = f"{server.base}{API}/devices/{device['id']}/commands"

    async def scenario():
        async with live(server, root.token) as socket, httpx.AsyncClient() as client:
            await socket.subscribe(topic="commands", device_id=device["id"])
            sent = await client.post(commands, headers=root.headers, json={"name": "reboot"})
            assert sent.status_code == 201, sent.text
            got = await socket.expect("command")
            assert got["command"]["id"] == sent.json()["id"]
            assert got["command"]["status"] == "queued" and got["command"]["name"] == "reboot"
            polled = await client.get(commands, headers={"X-API-Key": device["api_key"]})
            assert polled.status_code == 200, polled.text
            assert (await socket.expect("command"))["command"]["status"] == "delivered"
            done = await client.patch(f"{commands}/{sent.json()['id']}",
                                      headers={"X-API-Key": device["api_key"]},
                                      json={"status": "succeeded", "result": {"ok": True}})
            assert done.status_code == 200, done.text
            finished = (await socket.expect("command"))["command"]
            assert finished["status"] == "succeeded" and finished["result"] == {"ok": True}

    asyncio.run(scenario())


async def _nothing_but_own_status(socket, tenant) -> None:
    """Nothing is queued for the socket but, perhaps, its own device's status changes."""
    await socket.send({"type": "ping"})
    while (message := await socket.recv())["type"] != "pong":
        assert message["type"] == "device-status", message
        assert message["device"]["id"] == tenant.device["id"], message


async def _as_user(client, server, tenant, body) -> None:
    response = await client.post(f"{server.base}{API}/readings", headers=tenant.headers,
                                 params={"device_id": tenant.device["id"]}, json=body)
    assert response.status_code == 202, response.text


def test_no_organization_sees_another_ones_events_on_any_topic(server, root, other):
    async def scenario():
        async with live(server, root.token) as mine, live(server, other.token) as theirs, \
                httpx.AsyncClient() as client:
            for topic in TOPICS:
                await mine.subscribe(id=topic, topic=topic)
                await theirs.subscribe(id=topic, topic=topic)
            # Sent by a user, not the device: the device's own readings are contact, and the
            # device-status event below is to be the recorded one alone.
            await _as_user(client, server, root, {"ts": reading_time(),
                                                  "values": {"temperature": 30}})
            sent = await client.post(f"{server.base}{API}/devices/{root.device['id']}/commands",
                                     headers=root.headers, json={"name": "reboot"})
            assert sent.status_code == 201, sent.text
            await record_events(server.database_url, _status(root, True), _alert(root))
            got = set()
            while got != {"readings", "command", "device-status", "alert"}:
                # in any order; the only extra allowed: the own device coming online from an
                # earlier test's readings (a device's readings are contact)
                message = await mine.recv()
                assert message["type"] in {"readings", "command", "device-status", "alert"}
                if message["type"] == "device-status":
                    assert message["device"]["id"] == root.device["id"], message
                got.add(message["type"])
            # the hub handed each event to every matching socket before the root's own got
            # it: nothing of it waits for the other organization
            await _nothing_but_own_status(theirs, other)
            for topic in TOPICS:  # naming the other organization's device: not found
                await theirs.send({"type": "subscribe", "topic": topic,
                                   "device_id": root.device["id"]})
                got = await theirs.expect("error")
                assert got["code"] == "not_found" and "device" in got["detail"]
            # ...while its own events do reach it
            await _as_user(client, server, other, {"ts": reading_time(),
                                                   "values": {"temperature": 31}})
            assert (await theirs.expect("readings"))["device_id"] == other.device["id"]
            await _nothing_but_own_status(mine, root)

    asyncio.run(scenario())
