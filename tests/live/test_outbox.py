"""A socket's queue (telemetra.live.outbox) when the protocol can write frames at once: messages
are written in the pusher's step while the socket takes them, queued behind anything already
waiting when it does not, and always reach the client in the order they were pushed.

Pure logic: the socket is a list here; tests/live/test_sockets.py and test_lag.py run the real
server and clients.
"""

import asyncio

from telemetra.auth.principals import AuthUser
from telemetra.auth.roles import Role
from telemetra.live.outbox import Connection


def _connection(queue_size: int = 1000):
    wire: list[str] = []
    state = {"takes": True, "send_waits": None}

    def send_now(text: str) -> bool:
        if state["takes"]:
            wire.append(text)
        return state["takes"]

    async def send_text(text: str) -> None:
        if state["send_waits"] is not None:
            await state["send_waits"].wait()
        wire.append(text)

    user = AuthUser(id=1, organization_id=1, username="u", role=Role.member,
                    is_superadmin=False, session_id="s")
    connection = Connection(send_text, user, "token", 0.0, queue_size, send_now)
    return connection, wire, state


def test_a_socket_that_takes_frames_gets_them_in_the_pushers_step():
    connection, wire, _ = _connection()
    for n in range(3):
        connection.push(f"m{n}")
    assert wire == ["m0", "m1", "m2"]  # written at once: no sender task ran


def test_once_a_message_waits_later_ones_queue_behind_it_and_order_holds():
    async def scenario():
        connection, wire, state = _connection()
        sender = asyncio.create_task(connection.send_all())
        connection.push("m0")
        state["takes"] = False  # its buffer is full
        connection.push("m1")
        state["takes"] = True  # it could take m2 now, but m1 is ahead of it
        connection.push("m2")
        assert wire == ["m0"]
        await asyncio.sleep(0)  # the sender task drains the queue
        await asyncio.sleep(0)
        connection.push("m3")  # nothing queued any more: at once again
        sender.cancel()
        return wire

    assert asyncio.run(scenario()) == ["m0", "m1", "m2", "m3"]


def test_nothing_is_written_past_a_message_the_sender_task_is_still_sending():
    async def scenario():
        connection, wire, state = _connection()
        state["takes"] = False
        state["send_waits"] = asyncio.Event()
        sender = asyncio.create_task(connection.send_all())
        connection.push("m0")
        await asyncio.sleep(0)  # the task took m0 and waits for the socket
        state["takes"] = True  # the socket's buffer drained before the task resumed
        connection.push("m1")
        assert wire == []
        state["send_waits"].set()
        for _ in range(5):
            await asyncio.sleep(0)
        sender.cancel()
        return wire

    assert asyncio.run(scenario()) == ["m0", "m1"]


def test_a_socket_that_takes_nothing_still_lags_with_a_notice_first():
    async def scenario():
        connection, wire, state = _connection(queue_size=2)
        state["takes"] = False
        for n in range(5):
            connection.push(f"m{n}")
        sender = asyncio.create_task(connection.send_all())
        for _ in range(5):
            await asyncio.sleep(0)
        sender.cancel()
        return wire

    wire = asyncio.run(scenario())
    assert '"lagged"' in wire[0] and '"dropped":3' in wire[0]
    assert wire[1:] == ["m3", "m4"]
