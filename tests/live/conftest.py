"""A real ``telemetra serve`` per backend and a real WebSocket client (``websockets``).

Tests are plain functions that ``asyncio.run`` a scenario: sockets and HTTP calls
(``httpx.AsyncClient``) in one loop, each wait bounded, so a missing message fails the test
instead of hanging it.
"""

import asyncio
import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import websockets

from tests.server import API, Server

QUEUE = 50  # TELEMETRA_LIVE_QUEUE_MESSAGES of the test servers: small, so lag is quick to see
WAIT = 5.0  # seconds a message may take before a test says it never came
_names = itertools.count()
_times = itertools.count(1)
T0 = 1767268800.0


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


def reading_time() -> float:
    """A distinct past time (epoch seconds) for each reading body."""
    return T0 + next(_times)


@pytest.fixture(scope="module")
def server(databases, tmp_path_factory) -> Iterator[Server]:
    process = Server(databases.new(), tmp_path_factory.mktemp("live") / "server.log",
                     signup_mode="tenant", live_queue_messages=str(QUEUE),
                     live_recheck_seconds="1")
    process.start()
    try:
        yield process
    finally:
        process.stop()


@dataclass
class Tenant:
    """An organization of the test server: its owner's token, and a device with its key."""

    token: str
    device: dict

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}


def _token(server: Server, username: str, password: str) -> str:
    response = httpx.post(server.base + API + "/auth/login",
                          json={"username": username, "password": password}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def new_device(server: Server, headers: dict, **fields) -> dict:
    response = httpx.post(server.base + API + "/devices", headers=headers,
                          json={"name": unique("device"), **fields}, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def new_user(server: Server, headers: dict, role: str) -> tuple[dict, str]:
    """A user of the organization of ``headers``: (user, access token)."""
    username, password = unique(role), "password-123"
    response = httpx.post(server.base + API + "/users", headers=headers, timeout=10,
                          json={"username": username, "password": password, "role": role})
    assert response.status_code == 201, response.text
    return response.json(), _token(server, username, password)


@pytest.fixture(scope="module")
def root(server) -> Tenant:
    """The default organization, as its owner (the test superadmin)."""
    headers = server.login()
    token = headers["Authorization"].removeprefix("Bearer ")
    return Tenant(token, new_device(server, headers))


@pytest.fixture(scope="module")
def other(server) -> Tenant:
    """Another organization (a tenant sign-up), as its owner."""
    username = unique("tenant")
    response = httpx.post(server.base + API + "/auth/signup", timeout=10,
                          json={"username": username, "password": "password-123"})
    assert response.status_code == 201, response.text
    token = _token(server, username, "password-123")
    return Tenant(token, new_device(server, {"Authorization": f"Bearer {token}"}))


class Live:
    """One socket: JSON in and out, every wait bounded."""

    def __init__(self, socket) -> None:
        self.socket = socket

    async def send(self, message) -> None:
        await self.socket.send(message if isinstance(message, str) else json.dumps(message))

    async def recv(self, timeout: float = WAIT) -> dict:
        return json.loads(await asyncio.wait_for(self.socket.recv(), timeout))

    async def expect(self, kind: str, timeout: float = WAIT) -> dict:
        """The next message, which must be of type ``kind``."""
        got = await self.recv(timeout)
        assert got["type"] == kind, got
        return got

    async def subscribe(self, **fields) -> dict:
        await self.send({"type": "subscribe", **fields})
        return await self.expect("subscribed")

    async def nothing_pending(self) -> None:
        """Nothing is queued for this socket: a ping's pong is the very next message."""
        await self.send({"type": "ping"})
        got = await self.recv()
        assert got["type"] == "pong", f"expected nothing before the pong, got {got}"

    async def closed_with(self, timeout: float = WAIT) -> int:
        """Wait for the server to close the socket; its close code."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                await asyncio.wait_for(self.socket.recv(), deadline - time.monotonic())
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else closed.code
            except TimeoutError:
                break
        raise AssertionError("the socket was not closed")


def ws_url(server: Server, path: str = "/ws", token: str | None = None) -> str:
    url = server.base.replace("http://", "ws://") + API + path
    return url if token is None else f"{url}?token={token}"


def live(server: Server, token: str | None, path: str = "/ws", **options):
    """``async with live(server, token) as socket:`` a socket authenticated by ``?token=``."""

    class _Session:
        async def __aenter__(self) -> Live:
            self.connection = await websockets.connect(ws_url(server, path, token), **options)
            return Live(self.connection)

        async def __aexit__(self, *exc) -> None:
            await self.connection.close()

    return _Session()


async def post_readings(client: httpx.AsyncClient, server: Server, key: str,
                        body) -> httpx.Response:
    response = await client.post(server.base + API + "/readings", json=body,
                                 headers={"X-API-Key": key}, timeout=30)
    assert response.status_code == 202, response.text
    return response
