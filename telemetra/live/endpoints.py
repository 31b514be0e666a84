"""The live sockets (API.md, WebSocket), under the API's base path like every other route:
``/api/v1/ws`` (any topics, by subscribe messages) and ``/api/v1/ws/live-data``,
``/api/v1/ws/device-status``, ``/api/v1/ws/alerts`` (one topic for the whole organization).

Transport only: authenticate, parse each message strictly, hand it to the hub, and send what
the connection's queue holds. A bad message is answered with an error frame and the socket
stays open; no valid token within ``AUTH_SECONDS``, an expired token or a user who lost access
closes it with 4401.
"""

import asyncio
import contextlib
import logging
import time

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from telemetra.kit.errors import Forbidden, TelemetraError, Unauthorized
from telemetra.live.auth import CLOSE_UNAUTHORIZED, authenticate
from telemetra.live.deflate import WRITER
from telemetra.live.hub import Hub
from telemetra.live.outbox import Connection, message
from telemetra.live.schemas import (
    MAX_MESSAGE_CHARS,
    Auth,
    Ping,
    Subscribe,
    Unsubscribe,
    client_message,
)

log = logging.getLogger("telemetra.live")

router = APIRouter(tags=["live"])

AUTH_SECONDS = 10.0
CLOSE_UNAVAILABLE = 1011  # the database could not check the token: try again
WHOLE_ORGANIZATION = {"/ws/live-data": "readings", "/ws/device-status": "device-status",
                      "/ws/alerts": "alerts"}


class _BadMessage(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code, self.detail = code, detail


@router.websocket("/ws")
async def live(websocket: WebSocket) -> None:
    """Any topics, by ``subscribe`` messages."""
    await _serve(websocket, None)


@router.websocket("/ws/live-data")
async def live_data(websocket: WebSocket) -> None:
    """Every reading of the caller's organization (subscription ``readings``)."""
    await _serve(websocket, "readings")


@router.websocket("/ws/device-status")
async def live_device_status(websocket: WebSocket) -> None:
    """Every device status change of the caller's organization."""
    await _serve(websocket, "device-status")


@router.websocket("/ws/alerts")
async def live_alerts(websocket: WebSocket) -> None:
    """Every alert change of the caller's organization."""
    await _serve(websocket, "alerts")


async def _serve(websocket: WebSocket, topic: str | None) -> None:
    await websocket.accept()
    hub: Hub = websocket.app.state.live
    try:
        token, user, expires_at = await _first_credential(websocket)
    except WebSocketDisconnect:
        return
    except (Unauthorized, _BadMessage) as exc:
        await _close(websocket, CLOSE_UNAUTHORIZED, exc.detail)
        return
    except Exception:
        log.warning("a live socket's token could not be checked", exc_info=True)
        await _close(websocket, CLOSE_UNAVAILABLE, "the token could not be checked; retry")
        return
    writer = websocket.scope.get("extensions", {}).get(WRITER)  # under telemetra serve
    connection = hub.connect(writer.send if writer else websocket.send_text, user, token,
                             expires_at, writer.now if writer else None)
    _arm_expiry(connection)
    try:
        if websocket.query_params.get("token") is None:
            connection.push(_authenticated(connection))
        if topic is not None:
            subscription = await hub.subscribe(connection, Subscribe(type="subscribe",
                                                                     id=topic, topic=topic))
            connection.push(message("subscribed", id=subscription.id, topic=topic))
        await _run(websocket, hub, connection)
    finally:
        connection.expiry.cancel()
        hub.disconnect(connection)


async def _first_credential(websocket: WebSocket):
    token = websocket.query_params.get("token")
    if token is None:
        try:
            async with asyncio.timeout(AUTH_SECONDS):
                text = await _receive_text(websocket)
        except TimeoutError:
            raise Unauthorized(f"no access token within {AUTH_SECONDS:g} s: pass ?token= or "
                               'send {"type": "auth", "token": "..."} first') from None
        first = _parse(text)
        if not isinstance(first, Auth):
            raise Unauthorized('the first message must be {"type": "auth", "token": "..."}')
        token = first.token
    user, expires_at = await authenticate(websocket.app, token)
    return token, user, expires_at


def _arm_expiry(connection: Connection) -> None:
    """Close the socket (4401) when its token expires, unless a fresh one comes first."""
    if connection.expiry is not None:
        connection.expiry.cancel()
    connection.expiry = asyncio.get_running_loop().call_later(
        max(0.0, connection.expires_at - time.time()), connection.close, CLOSE_UNAUTHORIZED,
        "access token expired")


async def _run(websocket: WebSocket, hub: Hub, connection: Connection) -> None:
    """Until the client goes, the socket fails, or the hub closes it."""
    tasks = [asyncio.create_task(connection.send_all(), name="live-send"),
             asyncio.create_task(_read(websocket, hub, connection), name="live-read"),
             asyncio.create_task(connection.closed.wait(), name="live-close")]
    for task in tasks:  # how each ended (the client left, a send failed) matters no more
        task.add_done_callback(_ended)
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        # wait, not gather: cancelled while it waits (TestClient leaving, a server stopping),
        # gather raises its children's cancellation instead of the one this task was sent,
        # and the canceller (an anyio cancel scope) no longer knows it for its own.
        await asyncio.wait(tasks)
    if connection.closing is not None:
        await _close(websocket, *connection.closing)


def _ended(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as never retrieved


async def _read(websocket: WebSocket, hub: Hub, connection: Connection) -> None:
    while True:
        try:
            text = await _receive_text(websocket)
            request = _parse(text)
        except _BadMessage as exc:
            connection.push(message("error", code=exc.code, detail=exc.detail))
            continue
        try:
            await _handle(hub, connection, request)
        except TelemetraError as exc:
            extra = {"id": request.id} if getattr(request, "id", None) is not None else {}
            connection.push(message("error", code=exc.code, detail=exc.detail, **extra))


async def _handle(hub: Hub, connection: Connection, request) -> None:
    if isinstance(request, Ping):
        connection.push(message("pong"))
    elif isinstance(request, Subscribe):
        subscription = await hub.subscribe(connection, request)
        connection.push(message("subscribed", id=subscription.id, topic=subscription.topic))
    elif isinstance(request, Unsubscribe):
        hub.unsubscribe(connection, request.id)
        connection.push(message("unsubscribed", id=request.id))
    elif isinstance(request, Auth):  # a fresh token, to go on past the current one's expiry
        user, expires_at = await authenticate(hub.app, request.token)
        if user.id != connection.user.id:
            raise Forbidden("that token is another user's; open another socket for them")
        connection.user, connection.token, connection.expires_at = user, request.token, expires_at
        _arm_expiry(connection)
        connection.push(_authenticated(connection))


def _authenticated(connection: Connection) -> str:
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(connection.expires_at))
    return message("authenticated", user_id=connection.user.id, expires_at=expires)


async def _receive_text(websocket: WebSocket) -> str:
    received = await websocket.receive()
    if received["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(received.get("code", 1000))
    text = received.get("text")
    if text is None:
        raise _BadMessage("invalid_message", "messages are JSON in text frames, not binary")
    return text


def _parse(text: str):
    if len(text) > MAX_MESSAGE_CHARS:
        raise _BadMessage("payload_too_large",
                          f"a message may hold at most {MAX_MESSAGE_CHARS} characters")
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise _BadMessage("invalid_json", "the message is not JSON") from None
    try:
        return client_message.validate_python(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"][1:])
        detail = f"{where}: {first['msg']}" if where else first["msg"]
        raise _BadMessage("validation_error", detail) from None


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
        await websocket.close(code, reason.encode()[:120].decode(errors="ignore"))
