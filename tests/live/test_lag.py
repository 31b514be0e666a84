"""A socket that never reads: its bounded queue drops its oldest messages, for it alone, and
it is told how many (``lagged``); ingestion and the other sockets go on as if it were not
there. (How fast ingestion goes beside 200 sockets is bench/live.py's business.)"""

import asyncio
import base64
import json
import os
import socket
import struct

import httpx

from tests.live.conftest import QUEUE, live, new_device, post_readings, reading_time


class StuckClient:
    """A WebSocket client that reads nothing until told to: a plain socket with a small
    receive buffer, so the kernel holds little for it and the server's sends back up."""

    def __init__(self, port: int, path: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(4096)
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def send(self, text: str) -> None:
        payload, mask = text.encode(), os.urandom(4)
        assert len(payload) < 126
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)

    def _exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def read_all(self, quiet: float = 3.0) -> list[dict]:
        """Every text message until none comes for ``quiet`` seconds."""
        self.sock.settimeout(quiet)
        messages = []
        try:
            while True:
                first, second = self._exactly(2)
                size = second & 0x7F
                if size == 126:
                    size = struct.unpack(">H", self._exactly(2))[0]
                elif size == 127:
                    size = struct.unpack(">Q", self._exactly(8))[0]
                payload = self._exactly(size)
                if first & 0x0F == 0x1:
                    messages.append(json.loads(payload))
        except TimeoutError:
            return messages

    def close(self) -> None:
        self.sock.close()
READINGS = 1000  # per body: a message of ~100 KB, so the client's and kernel's buffers fill fast
BODIES = 150
# How many messages a stuck socket absorbs without a drop: its queue (QUEUE), the kernel's
# buffers (the server's send buffer grows to net.ipv4.tcp_wmem's maximum, 4 MB: ~40 of these
# messages; the client's receive buffer is small) and the one message uvicorn's transport
# holds past its high-water mark. BODIES messages must be well past that.


def test_a_socket_that_never_reads_gets_lagged_and_slows_nobody(server, root):
    device = new_device(server, root.headers)

    async def scenario():
        stuck = StuckClient(server.port, f"/api/v1/ws?token={root.token}")
        try:
            stuck.send('{"type": "subscribe", "topic": "readings", "device_id": %d}'
                       % device["id"])
            async with live(server, root.token) as healthy, httpx.AsyncClient() as client:
                await healthy.subscribe(topic="readings", device_id=device["id"])
                got = []
                # Each body is posted once the healthy socket has the one before: batches
                # committed within TELEMETRA_LIVE_FLUSH_SECONDS of each other are gathered
                # into one message, so bodies posted back to back would make however many
                # messages the timing allowed (a few dozen), and a stuck socket's queue and
                # buffers might hold them all. One body, one message: BODIES messages.
                for n in range(BODIES):
                    start = reading_time()
                    await post_readings(client, server, device["api_key"], [
                        {"ts": start + i / 10_000, "values": {"level": n}}
                        for i in range(READINGS)])
                    while sum(len(m.get("items", ())) for m in got) < (n + 1) * READINGS:
                        got.append(await healthy.recv(timeout=30))
                # the healthy socket got every reading, in order, and never lagged
                assert {m["type"] for m in got} == {"readings"}
                assert [i["value"] for m in got for i in m["items"]] == [
                    n for n in range(BODIES) for _ in range(READINGS)]

            seen = await asyncio.to_thread(stuck.read_all)  # now it reads what is left for it
        finally:
            stuck.close()
        dropped = sum(m["dropped"] for m in seen if m["type"] == "lagged")
        assert dropped > 0, "the stuck socket was never told it lagged"
        # what it lost is the oldest: what it got is in order and ends with the newest body,
        # and past the lag it holds at most its queue's worth
        values = [i["value"] for m in seen if m["type"] == "readings" for i in m["items"]]
        assert values == sorted(values) and values[-1] == BODIES - 1
        assert len(values) < BODIES * READINGS
        lagged_at = next(i for i, m in enumerate(seen) if m["type"] == "lagged")
        assert len(seen) - lagged_at - 1 <= QUEUE

    asyncio.run(scenario())
