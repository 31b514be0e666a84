"""Against a real ``telemetra serve``: a huge body gets its 413 while it is being sent, and the
server does not hold it (a 100 MiB body to /auth/login grew the server to 762 MB)."""

import socket
import time

import pytest

from tests.server import API, Server

CHUNK = 64 * 1024
TOTAL = 100 * 1024 * 1024


def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _send_chunked(port: int, path: str) -> tuple[bytes, int]:
    """POST an endless-looking chunked JSON string body; stop at the first byte of an answer.
    Returns (the answer's first bytes, how many body bytes were sent by then)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n".encode())
    chunk = f"{CHUNK:x}\r\n".encode() + b"a" * CHUNK + b"\r\n"
    sent, answer = 0, b""
    try:
        sock.sendall(b'5\r\n{"a":\r\n')
        while sent < TOTAL:
            sock.setblocking(False)
            try:
                answer = sock.recv(65536)
            except BlockingIOError:
                answer = b""
            sock.setblocking(True)
            if answer:
                break
            sock.sendall(chunk)
            sent += CHUNK
        if not answer:
            sock.settimeout(30)
            answer = sock.recv(65536)
    except (BrokenPipeError, ConnectionResetError):
        sock.settimeout(30)
        try:
            answer = answer or sock.recv(65536)
        except OSError:
            pass
    finally:
        sock.close()
    return answer, sent


@pytest.mark.parametrize("path", ["/auth/login", "/auth/signup"])
def test_a_chunked_100_mib_body_is_a_413_early_and_the_server_does_not_grow(tmp_path, path):
    server = Server(f"sqlite:///{tmp_path / 'bodies.db'}", tmp_path / "server.log")
    server.start()
    try:
        before = _rss_bytes(server.process.pid)
        answer, sent = _send_chunked(server.port, API + path)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert sent < 10 * 1024 * 1024  # the limit is 64 KiB (1 MiB for ingestion)
        time.sleep(0.5)
        assert _rss_bytes(server.process.pid) - before < 50 * 1024 * 1024
        # and the server goes on answering
        assert server.login()
    finally:
        server.stop()
