"""Helpers for the alert tests: waiting for what the reactions do after commit."""

import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_settings


def eventually(probe: Callable[[], Any], timeout: float = 15.0, interval: float = 0.1) -> Any:
    """``probe()`` once it is truthy; fails with its last value after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    value = probe()
    while not value:
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout} s")
        time.sleep(interval)
        value = probe()
    return value



@pytest.fixture
def settings(database_url):
    """Tenant sign-up, so a test can make a second organization and check isolation."""
    return make_settings(database_url, signup_mode="tenant")


class Receiver:
    """A real HTTP server on a free port that records webhook deliveries and answers each
    with the next status of ``statuses`` (then 200)."""

    def __init__(self, statuses=(), port: int = 0) -> None:
        self.statuses = list(statuses)
        self.received: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.received.append({"headers": dict(self.headers), "body": body,
                                              "status": status})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def delivered(self) -> list[dict]:
        """The requests answered with a 2xx."""
        with self.lock:
            return [r for r in self.received if 200 <= r["status"] < 300]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(statuses=(), port: int = 0) -> Receiver:
        made.append(Receiver(statuses, port))
        return made[-1]

    yield make
    for item in made:
        item.close()


def readme_verifier() -> Callable[[str, bytes, str], dict]:
    """``verified_event`` as README.md's "Verifying a webhook signature" gives it: its
    Python lines run as they are, so what a receiver copies from there is what is tested."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Verifying a webhook signature", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 (our own README)
    return namespace["verified_event"]


def verify(secret: str, request: dict) -> dict:
    """The body of a delivery whose signature checks out, checked with the README's lines
    (a wrong one raises AssertionError)."""
    try:
        return readme_verifier()(secret, request["body"],
                                 request["headers"]["X-Telemetra-Signature"])
    except PermissionError as exc:
        raise AssertionError(f"the signature does not verify: {exc}") from None
