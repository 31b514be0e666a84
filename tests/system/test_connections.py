"""Idle and slowloris connections are closed by `telemetra serve`, on a real process with two
workers, while normal requests are served meanwhile. Raw sockets, no HTTP client library
between the test and the server."""

import selectors
import socket
import time

import httpx
import pytest

from tests.server import Server

HEAD_TIMEOUT = 2.0
IDLE, SLOW = 150, 30


def _connect(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.setblocking(False)
    return sock


def _read_until_closed(socks: list[socket.socket], seconds: float,
                       trickle: list[socket.socket] = ()) -> dict[socket.socket, bytes]:
    """What each socket received until the server closed it; sockets still open after
    ``seconds`` are missing from the answer. ``trickle`` sockets send a header byte every
    0.3 s meanwhile, as slowloris does."""
    selector = selectors.DefaultSelector()
    received = {sock: b"" for sock in socks}
    for sock in socks:
        selector.register(sock, selectors.EVENT_READ)
    closed, deadline, next_byte = {}, time.monotonic() + seconds, time.monotonic()
    while len(closed) < len(socks) and time.monotonic() < deadline:
        if time.monotonic() >= next_byte:
            for sock in trickle:
                if sock not in closed:
                    try:
                        sock.send(b"x")
                    except OSError:
                        pass
            next_byte = time.monotonic() + 0.3
        for key, _ in selector.select(timeout=0.1):
            sock = key.fileobj
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, BlockingIOError):
                data = b""
            received[sock] += data
            if not data:
                closed[sock] = received[sock]
                selector.unregister(sock)
    selector.close()
    return closed


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_idle_and_slowloris_connections_are_closed_and_requests_served_meanwhile(
        database_url, tmp_path):
    server = Server(database_url, tmp_path / "server.log", workers=2,
                    http_header_timeout_seconds=str(HEAD_TIMEOUT), http_keep_alive_seconds="2")
    server.start()
    socks = []
    try:
        idle = [_connect(server) for _ in range(IDLE)]
        slow = [_connect(server) for _ in range(SLOW)]
        for sock in slow:
            sock.send(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        # A kept-alive connection: one request answered, then the next head trickles in.
        kept = _connect(server)
        kept.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        kept.setblocking(True)
        assert _response(kept).startswith(b"HTTP/1.1 200")
        kept.setblocking(False)
        kept.send(b"GET /health HTTP/1.1\r\n")
        socks = idle + slow + [kept]
        started = time.monotonic()
        # Meanwhile the server answers others at once.
        with httpx.Client(base_url=server.base, timeout=5) as client:
            for _ in range(10):
                before = time.monotonic()
                assert client.get("/health").status_code == 200
                assert time.monotonic() - before < 1
        closed = _read_until_closed(socks, HEAD_TIMEOUT + 8, trickle=slow + [kept])
        seconds = time.monotonic() - started
        still_open = [sock for sock in socks if sock not in closed]
        assert not still_open, (f"{len([s for s in idle if s not in closed])} idle, "
                                f"{len([s for s in slow if s not in closed])} slowloris "
                                f"and kept-alive {kept not in closed} still open")
        assert seconds < HEAD_TIMEOUT + 8
        assert all(closed[sock] == b"" for sock in idle)  # nothing sent: closed, no answer
        assert all(closed[sock].startswith(b"HTTP/1.1 408") for sock in slow + [kept])
        assert httpx.get(server.base + "/health", timeout=5).status_code == 200
    finally:
        for sock in socks:
            sock.close()
        server.stop()


def _response(sock: socket.socket) -> bytes:
    """One whole /health response (its JSON body ends with a brace)."""
    data = b""
    while not data.endswith(b"}"):
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_slow_client_within_the_deadline_is_served(database_url, tmp_path):
    server = Server(database_url, tmp_path / "server.log",
                    http_header_timeout_seconds="3", http_keep_alive_seconds="2")
    server.start()
    try:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        for part in (b"GET /health HTTP/1.1\r\n", b"Host: x\r\n", b"\r\n"):
            time.sleep(0.5)
            sock.send(part)
        assert _response(sock).startswith(b"HTTP/1.1 200")
        # Kept alive: a second request on it, well within the timeouts, is answered too.
        time.sleep(1)
        sock.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _response(sock).startswith(b"HTTP/1.1 200")
        sock.close()
    finally:
        server.stop()
