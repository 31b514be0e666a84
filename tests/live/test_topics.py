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
from tests.live.conftest import API, live, post_readings, reading_time

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


def test_no_organization_sees_another_ones_events_on_any_topic(server, root, other):
    async def scenario():
        async with live(server, root.token) as mine, live(server, other.token) as theirs, \
                httpx.AsyncClient() as client:
            for topic in TOPICS:
                await mine.subscribe(id=topic, topic=topic)
                await theirs.subscribe(id=topic, topic=topic)
            await post_readings(client, server, root.device["api_key"],
                                {"ts": reading_time(), "values": {"temperature": 30}})
            sent = await client.post(f"{server.base}{API}/devices/{root.device['id']}/commands",
                                     headers=root.headers, json={"name": "reboot"})
            assert sent.status_code == 201, sent.text
            await record_events(server.database_url, _status(root, True), _alert(root))
            got = {(await mine.recv())["type"] for _ in TOPICS}
            assert got == {"readings", "command", "device-status", "alert"}
            # the hub handed each event to every matching socket before the root's own got
            # it: nothing of it waits for the other organization
            await theirs.nothing_pending()
            for topic in TOPICS:  # naming the other organization's device: not found
                await theirs.send({"type": "subscribe", "topic": topic,
                                   "device_id": root.device["id"]})
                got = await theirs.expect("error")
                assert got["code"] == "not_found" and "device" in got["detail"]
            # ...while its own events do reach it
            await post_readings(client, server, other.device["api_key"],
                                {"ts": reading_time(), "values": {"temperature": 31}})
            assert (await theirs.expect("readings"))["device_id"] == other.device["id"]
            await mine.nothing_pending()

    asyncio.run(scenario())
