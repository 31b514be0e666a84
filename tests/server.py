"""Run ``telemetra serve`` as a real process for tests that kill it or its database."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, SUITE_RATE_LIMITS

API = "/api/v1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, database_url: str, log_path: Path, workers: int = 1,
                 **settings: str) -> None:
        self.workers = workers
        self.database_url = database_url
        self.port = free_port()
        self.log_path = log_path
        self.settings = settings
        self.process: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        env = {**os.environ, "TELEMETRA_DATABASE_URL": self.database_url,
               "TELEMETRA_ADMIN_USERNAME": ADMIN_USERNAME,
               "TELEMETRA_ADMIN_PASSWORD": ADMIN_PASSWORD,
               "TELEMETRA_SECRET_KEY": "server-test-secret-key-long-enough-0123456789",
               "TELEMETRA_LOG_LEVEL": "WARNING", "TELEMETRA_ENV": "test",
               **{f"TELEMETRA_{k.upper()}": v for k, v in SUITE_RATE_LIMITS.items()},
               **{f"TELEMETRA_{k.upper()}": v for k, v in self.settings.items()}}
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "telemetra", "serve", "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", str(self.workers)], env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(self.base + "/health", timeout=1).status_code in (200, 503):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush; what was acknowledged must already be durable."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def login(self) -> dict:
        response = httpx.post(self.base + API + "/auth/login",
                              json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
        response.raise_for_status()
        return {"Authorization": f"Bearer {response.json()['access_token']}"}
