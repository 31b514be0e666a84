"""A live socket whose ASGI task is cancelled while it is open (Starlette's TestClient leaving
its ``with`` block under load, a server cancelling its connections on shutdown) ends like any
cancelled task: the canceller's own cancellation, never one the endpoint made up.

Seen in CI: ``with client.websocket_connect(...)`` failed on exit with a bare
``CancelledError`` once the TestClient's cancel scope reached the endpoint before the
client's close did. The endpoint's cleanup awaited its tasks with ``gather``, which, when
cancelled, raises its children's cancellation instead of the one that was sent, so anyio
did not recognise it as its own and let it out of the scope.
"""

import asyncio
import math

import anyio
import orjson

from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME
from tests.helpers import Api
from tests.server import API


def test_a_socket_cancelled_while_open_ends_with_its_canceller_s_cancellation(client):
    headers = Api(client).login(ADMIN_USERNAME, ADMIN_PASSWORD)  # an in-process app's own
    token = headers["Authorization"].removeprefix("Bearer ")
    app = client.app

    async def session(goodbye: bool, steps: int) -> bool:
        send_tx, send_rx = anyio.create_memory_object_stream(math.inf)
        receive_tx, receive_rx = anyio.create_memory_object_stream(math.inf)
        scope = {"type": "websocket", "path": f"{API}/ws", "raw_path": f"{API}/ws".encode(),
                 "root_path": "", "scheme": "ws", "query_string": f"token={token}".encode(),
                 "headers": [(b"host", b"testserver")], "client": ("testclient", 50000),
                 "server": ("testserver", 80), "subprotocols": [], "state": {},
                 "extensions": {}}
        scopes: list[anyio.CancelScope] = []

        async def run() -> None:
            with anyio.CancelScope() as cancel_scope:
                scopes.append(cancel_scope)
                await app(scope, receive_rx.receive, send_tx.send)
                await anyio.sleep_forever()

        task = asyncio.create_task(run())
        await receive_tx.send({"type": "websocket.connect"})
        assert (await send_rx.receive())["type"] == "websocket.accept"
        await receive_tx.send({"type": "websocket.receive", "text": '{"type": "ping"}'})
        pong = await send_rx.receive()
        assert orjson.loads(pong["text"])["type"] == "pong"
        if goodbye:  # as TestClient leaves: the close, then at once the cancellation
            await receive_tx.send({"type": "websocket.disconnect", "code": 1000})
        for _ in range(steps):  # so the cancellation meets the endpoint at each of its awaits
            await asyncio.sleep(0)
        scopes[0].cancel()
        with anyio.fail_after(5):
            await task  # raised CancelledError when the endpoint swapped the cancellation
        return scopes[0].cancelled_caught  # False when the endpoint had ended first

    for goodbye in (False, True):
        for steps in range(12):
            assert client.portal.call(session, goodbye, steps) or goodbye, steps
