"""Changes a socket must see at once, told by events rather than found by a periodic check:
a device added to or removed from a group, and a user's logout or password change.

This module's server checks sockets' tokens again only every hour, so a socket closed here
was closed by the event.
"""

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from tests.live.conftest import (
    API,
    Tenant,
    _token,
    live,
    new_device,
    new_user,
    post_readings,
    reading_time,
    unique,
)
from tests.server import Server


@pytest.fixture(scope="module")
def server(databases, tmp_path_factory) -> Iterator[Server]:
    process = Server(databases.new(), tmp_path_factory.mktemp("live-changes") / "server.log",
                     live_recheck_seconds="3600")
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def root(server) -> Tenant:
    headers = server.login()
    return Tenant(headers["Authorization"].removeprefix("Bearer "), new_device(server, headers))


def test_a_group_subscription_follows_the_groups_members_at_once(server, root):
    group = httpx.post(server.base + API + "/groups", headers=root.headers,
                       json={"name": unique("group")}, timeout=10).json()
    device = new_device(server, root.headers)
    member = f"{server.base}{API}/groups/{group['id']}/devices/{device['id']}"

    async def scenario():
        async with live(server, root.token) as socket, httpx.AsyncClient() as client:
            await socket.subscribe(id="group", topic="readings", group_id=group["id"])
            await socket.subscribe(id="device", topic="readings", device_id=device["id"])

            async def post(value: int) -> list[str]:
                """Which subscriptions got a reading of ``device`` posted now."""
                await post_readings(client, server, device["api_key"],
                                    {"ts": reading_time(), "values": {"level": value}})
                got = [await socket.expect("readings")]  # the device subscription's, always
                await socket.nothing_pending()  # a group message comes with it or not at all
                return sorted(m["subscription"] for m in got)

            async def and_group(value: int) -> list[str]:
                await post_readings(client, server, device["api_key"],
                                    {"ts": reading_time(), "values": {"level": value}})
                got = [await socket.expect("readings"), await socket.expect("readings")]
                assert {m["items"][0]["value"] for m in got} == {value}
                await socket.nothing_pending()
                return sorted(m["subscription"] for m in got)

            assert await post(1) == ["device"]  # outside the group (and now known to be)
            response = await client.post(member, headers=root.headers, timeout=10)
            assert response.status_code in (200, 201, 204), response.text
            assert await and_group(2) == ["device", "group"]
            response = await client.delete(member, headers=root.headers, timeout=10)
            assert response.status_code in (200, 204), response.text
            assert await post(3) == ["device"]

    asyncio.run(scenario())


def test_logout_and_password_change_close_that_users_sockets_at_once(server, root):
    user, first = new_user(server, root.headers, "member")
    second = _token(server, user["username"], "password-123")  # another session of theirs
    _, bystander = new_user(server, root.headers, "member")

    async def scenario():
        async with live(server, first) as ended, live(server, second) as kept, \
                live(server, bystander) as other, httpx.AsyncClient() as client:
            for socket in (ended, kept, other):
                await socket.subscribe(topic="readings")
            response = await client.post(f"{server.base}{API}/auth/logout", timeout=10,
                                         headers={"Authorization": f"Bearer {first}"})
            assert response.status_code in (200, 204), response.text
            assert await ended.closed_with() == 4401
            await kept.nothing_pending()  # the user's other session goes on

            response = await client.post(
                f"{server.base}{API}/auth/password", timeout=10,
                headers={"Authorization": f"Bearer {second}"},
                json={"current_password": "password-123", "new_password": "password-456"})
            assert response.status_code == 200, response.text
            assert await kept.closed_with() == 4401
            await other.nothing_pending()  # another user's socket is untouched

    asyncio.run(scenario())
