"""Live readings over a real socket to a real server: auth, subscriptions, filters, errors."""

import asyncio
import time

import httpx
import jwt
import websockets

from tests.live.conftest import (
    API,
    live,
    new_device,
    new_user,
    post_readings,
    reading_time,
    unique,
    ws_url,
)
from tests.server import Server

SECRET = "server-test-secret-key-long-enough-0123456789"  # tests.server's TELEMETRA_SECRET_KEY


def test_a_reading_arrives_within_a_second_of_its_202(server, root):
    async def scenario():
        async with live(server, root.token) as socket, httpx.AsyncClient() as client:
            subscribed = await socket.subscribe(id="mine", topic="readings",
                                                device_id=root.device["id"])
            assert subscribed["id"] == "mine" and subscribed["topic"] == "readings"
            at = reading_time()
            await post_readings(client, server, root.device["api_key"],
                                {"ts": at, "values": {"temperature": 21.5}})
            got = await socket.expect("readings", timeout=1.0)
            assert got["subscription"] == "mine" and got["device_id"] == root.device["id"]
            [item] = got["items"]
            assert item["key"] == "temperature" and item["value"] == 21.5
            assert item["unit"] == "°C" and item["valid"] is True
            assert item["ts"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
            assert isinstance(item["sensor_id"], int) and got["ts"].endswith("Z")

    asyncio.run(scenario())


def test_keys_several_subscriptions_and_unsubscribe(server, root):
    key = root.device["api_key"]

    async def scenario():
        async with live(server, root.token) as socket, httpx.AsyncClient() as client:
            await socket.subscribe(id="temperature", topic="readings",
                                   device_id=root.device["id"], keys=["temperature"])
            await socket.subscribe(id="everything", topic="readings")
            await post_readings(client, server, key, {"ts": reading_time(), "values":
                                                      {"temperature": 20, "humidity": 50}})
            got = {m["subscription"]: m for m in [await socket.recv(), await socket.recv()]}
            assert [i["key"] for i in got["temperature"]["items"]] == ["temperature"]
            assert sorted(i["key"] for i in got["everything"]["items"]) == ["humidity",
                                                                            "temperature"]
            # a batch without the key sends that subscription nothing
            await post_readings(client, server, key, {"ts": reading_time(),
                                                      "values": {"humidity": 51}})
            assert (await socket.expect("readings"))["subscription"] == "everything"
            await socket.nothing_pending()

            await socket.send({"type": "unsubscribe", "id": "temperature"})
            assert (await socket.expect("unsubscribed"))["id"] == "temperature"
            await post_readings(client, server, key, {"ts": reading_time(),
                                                      "values": {"temperature": 22}})
            assert (await socket.expect("readings"))["subscription"] == "everything"
            await socket.nothing_pending()

    asyncio.run(scenario())


def test_site_and_group_subscriptions(server, root):
    site = httpx.post(server.base + API + "/sites", headers=root.headers,
                      json={"name": unique("site")}, timeout=10).json()
    group = httpx.post(server.base + API + "/groups", headers=root.headers,
                       json={"name": unique("group")}, timeout=10).json()
    in_both = new_device(server, root.headers, site_id=site["id"])
    assert httpx.post(f"{server.base}{API}/groups/{group['id']}/devices/{in_both['id']}",
                      headers=root.headers, timeout=10).status_code in (200, 201, 204)
    outside = new_device(server, root.headers)

    async def scenario():
        async with live(server, root.token) as socket, httpx.AsyncClient() as client:
            await socket.subscribe(id="site", topic="readings", site_id=site["id"])
            await socket.subscribe(id="group", topic="readings", group_id=group["id"])
            await post_readings(client, server, outside["api_key"],
                                {"ts": reading_time(), "values": {"temperature": 1}})
            await post_readings(client, server, in_both["api_key"],
                                {"ts": reading_time(), "values": {"temperature": 2}})
            got = [await socket.recv(), await socket.recv()]
            assert sorted(m["subscription"] for m in got) == ["group", "site"]
            assert {m["device_id"] for m in got} == {in_both["id"]}
            await socket.nothing_pending()

    asyncio.run(scenario())


def test_invalid_readings_reach_admins_only(server, root):
    _, member = new_user(server, root.headers, "member")
    _, admin = new_user(server, root.headers, "admin")
    device = root.device

    async def scenario():
        async with (live(server, member) as members, live(server, admin) as admins,
                    httpx.AsyncClient() as client):
            for socket in (members, admins):
                await socket.subscribe(topic="readings", device_id=device["id"])
            at = reading_time()
            await post_readings(client, server, device["api_key"], {"readings": [
                {"key": "temperature", "value": 1, "ts": at, "tags": ["suspect"]},
                {"key": "temperature", "value": 2, "ts": at + 0.5}]})
            seen = (await admins.expect("readings"))["items"]
            assert [(i["value"], i["valid"]) for i in seen] == [(1, False), (2, True)]
            assert [i["value"] for i in (await members.expect("readings"))["items"]] == [2]
            # a batch holding only invalid readings tells the member nothing at all
            await post_readings(client, server, device["api_key"], {"readings": [
                {"key": "temperature", "value": 3, "ts": reading_time(), "tags": ["suspect"]}]})
            assert (await admins.expect("readings"))["items"][0]["valid"] is False
            await members.nothing_pending()

    asyncio.run(scenario())


def test_bad_messages_get_error_frames_and_the_socket_stays_open(server, root):
    bad = [("not json", "invalid_json"),
           ({"type": "dance"}, "validation_error"),
           ({"type": "subscribe", "topic": "weather"}, "validation_error"),
           ({"type": "subscribe", "topic": "readings", "colour": "red"}, "validation_error"),
           ({"type": "subscribe", "topic": "readings", "device_id": "one"}, "validation_error"),
           ({"type": "subscribe", "topic": "readings", "device_id": root.device["id"],
             "site_id": 1}, "validation_error"),
           ({"type": "subscribe", "topic": "device-status", "keys": ["x"]}, "validation_error"),
           ({"type": "subscribe", "topic": "readings", "device_id": 2**31 - 1}, "not_found"),
           ({"type": "unsubscribe", "id": "never"}, "not_found"),
           ({"type": "subscribe", "id": "twice", "topic": "alerts"}, None),
           ({"type": "subscribe", "id": "twice", "topic": "alerts"}, "conflict"),
           ("[" * 20_000, "payload_too_large"),
           ([1, 2], "validation_error")]

    async def scenario():
        async with live(server, root.token) as socket:
            for message, code in bad:
                await socket.send(message)
                got = await socket.recv()
                if code is None:
                    assert got["type"] == "subscribed"
                    continue
                assert got["type"] == "error" and got["code"] == code, (message, got)
                assert got["detail"]
            await socket.socket.send(b"\x00binary")
            assert (await socket.expect("error"))["code"] == "invalid_message"
            await socket.send({"type": "ping"})
            assert (await socket.expect("pong"))["ts"]

    asyncio.run(scenario())


def _short_token(token: str, seconds: float) -> str:
    """The same session's token, expiring in ``seconds`` (signed as the server signs)."""
    claims = jwt.decode(token, options={"verify_signature": False})
    claims.update(exp=int(time.time() + seconds), jti=unique("jti"))
    return jwt.encode(claims, SECRET, algorithm="HS256")


def test_token_by_first_message_and_refused_credentials(server: Server, root):
    async def closed(first=None, token=None) -> int:
        async with live(server, token) as socket:
            if first is not None:
                await socket.send(first)
            return await socket.closed_with(timeout=15)

    async def scenario():
        async with live(server, None) as socket:
            await socket.send({"type": "auth", "token": root.token})
            assert (await socket.expect("authenticated"))["expires_at"].endswith("Z")
            await socket.subscribe(topic="readings")
        assert await closed(token="not-a-token") == 4401
        assert await closed(token=root.device["api_key"]) == 4401
        assert await closed(token=_short_token(root.token, -5)) == 4401
        assert await closed(first={"type": "ping"}) == 4401
        assert await closed(first={"type": "auth", "token": "bad"}) == 4401
        started = time.monotonic()
        assert await closed() == 4401  # nothing at all: closed after 10 s
        assert time.monotonic() - started >= 9.5

    asyncio.run(scenario())


def test_expired_token_closes_the_socket_unless_renewed(server, root):
    async def scenario():
        async with live(server, _short_token(root.token, 2)) as socket:
            assert await socket.closed_with(timeout=6) == 4401
        async with live(server, _short_token(root.token, 2)) as socket:
            await socket.send({"type": "auth", "token": root.token})
            await socket.expect("authenticated")
            await asyncio.sleep(3)
            await socket.nothing_pending()  # past the first token's expiry, still open
            _, other_user = new_user(server, root.headers, "viewer")
            await socket.send({"type": "auth", "token": other_user})
            assert (await socket.expect("error"))["code"] == "forbidden"

    asyncio.run(scenario())


def test_a_deactivated_user_or_ended_session_closes_the_socket(server, root):
    member, token = new_user(server, root.headers, "member")
    _, leaving = new_user(server, root.headers, "viewer")

    async def scenario():
        async with live(server, token) as socket, live(server, leaving) as logged_out:
            await socket.subscribe(topic="readings")
            await logged_out.subscribe(topic="alerts")
            response = httpx.patch(f"{server.base}{API}/users/{member['id']}/deactivate",
                                   headers=root.headers, timeout=10)
            assert response.status_code == 200, response.text
            assert await socket.closed_with() == 4401
            # logout (tests/live/test_changes.py: at once, without the periodic check)
            response = httpx.post(f"{server.base}{API}/auth/logout", timeout=10,
                                  headers={"Authorization": f"Bearer {leaving}"})
            assert response.status_code in (200, 204), response.text
            assert await logged_out.closed_with() == 4401

    asyncio.run(scenario())


def test_whole_organization_endpoints(server, root, other):
    async def scenario():
        async with live(server, root.token, "/ws/live-data") as socket, \
                live(server, None, "/ws/device-status") as statuses, \
                httpx.AsyncClient() as client:
            assert (await socket.expect("subscribed"))["topic"] == "readings"
            await statuses.send({"type": "auth", "token": root.token})
            await statuses.expect("authenticated")
            assert (await statuses.expect("subscribed"))["topic"] == "device-status"
            await post_readings(client, server, other.device["api_key"],
                                {"ts": reading_time(), "values": {"temperature": 9}})
            device = new_device(server, root.headers)
            await post_readings(client, server, device["api_key"],
                                {"ts": reading_time(), "values": {"temperature": 10}})
            got = await socket.expect("readings")
            assert got["device_id"] == device["id"] and got["subscription"] == "readings"
        async with websockets.connect(ws_url(server, "/ws/alerts", root.token)) as raw:
            assert '"subscribed"' in await asyncio.wait_for(raw.recv(), 5)

    asyncio.run(scenario())
