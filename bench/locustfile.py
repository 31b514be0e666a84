"""Load test with Locust: a realistic mix on one Telemetra, built on the SDK.

- ``DeviceUser`` (most of them): a simulated device (``telemetra.client.synthetic.Climate``)
  posting four readings every ``TELEMETRA_LOAD_INTERVAL`` seconds (5) through
  ``DeviceClient``, polling its commands every few posts, a heartbeat a minute.
- ``DashboardUser``: a person on a dashboard: latest values of a device, 5-minute and hourly
  aggregates, the last 15 minutes of readings, through ``UserClient``.
- ``LiveUser``: an open WebSocket subscribed to the organization's readings; each reading
  that arrives is recorded as ``WS reading`` with its delay from the reading's time, and a
  ping every 20 s as ``WS ping``.

Devices are registered through the API as ``load-w<worker>-<n>`` by the user in
``TELEMETRA_LOAD_USERNAME`` / ``TELEMETRA_LOAD_PASSWORD`` (default: `make run`'s
admin / telemetra-admin), or reused with a new key on the next run. Each Locust process logs
in once and its dashboard and live users share that session (the login rate limit is per
address).
Retries are off: the figures show every failure.

    .venv/bin/pip install -c constraints.txt -e '.[load]'
    .venv/bin/locust -f bench/locustfile.py --host http://127.0.0.1:8000 \\
        --headless -u 120 -r 20 -t 2m          # or without --headless: http://127.0.0.1:8089
"""

import itertools
import json
import logging
import os
import random
import time
from contextlib import contextmanager
from datetime import UTC, datetime

import gevent
import gevent.queue
import websocket
from gevent.lock import Semaphore
from locust import User, between, constant_pacing, events, task

from telemetra.client import Backoff, ClientError, DeviceClient, UserClient
from telemetra.client.synthetic import Climate

USERNAME = os.environ.get("TELEMETRA_LOAD_USERNAME", "admin")
PASSWORD = os.environ.get("TELEMETRA_LOAD_PASSWORD", "telemetra-admin")
INTERVAL = float(os.environ.get("TELEMETRA_LOAD_INTERVAL", "5"))
NO_RETRY = Backoff(attempts=1)
logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise


class Shared:
    """What one Locust process shares between its users: the session and the devices."""

    api: UserClient | None = None
    devices: list[int] = []
    numbers = itertools.count(1)
    lock = Semaphore()

    @classmethod
    def session(cls, host: str) -> UserClient:
        with cls.lock:
            if cls.api is None:
                api = UserClient(host, backoff=NO_RETRY)
                api.login(USERNAME, PASSWORD)
                cls.api = api
            return cls.api


def _worker(environment) -> int:
    return getattr(environment.runner, "worker_index", 0) or 0


class Timed:
    """Each SDK call recorded as a Locust request: its time, and its exception if any."""

    def __init__(self, environment) -> None:
        self.environment = environment

    @contextmanager
    def __call__(self, name: str, kind: str = "SDK"):
        started = time.perf_counter()
        exception = None
        try:
            yield
        except ClientError as exc:
            exception = exc
        self.environment.events.request.fire(
            request_type=kind, name=name, response_time=(time.perf_counter() - started) * 1000,
            response_length=0, exception=exception, context={})


class DeviceUser(User):
    weight = 10
    wait_time = constant_pacing(INTERVAL)

    def on_start(self) -> None:
        api = Shared.session(self.host)
        name = f"load-w{_worker(self.environment)}-{next(Shared.numbers):05d}"
        existing = [d for d in api.devices(q=name) if d["name"] == name]
        credentials = (api.rotate_key(existing[0]["id"]) if existing
                       else api.create_device(name, device_type="load-test"))
        Shared.devices.append(credentials.id)
        self.device = DeviceClient(self.host, credentials.id, credentials.api_key,
                                   backoff=NO_RETRY)
        self.climate = Climate(seed=credentials.id)
        self.timed = Timed(self.environment)
        self.posts = 0
        self.last_heartbeat = 0.0
        gevent.sleep(random.uniform(0, INTERVAL))  # a fleet is not in step

    @task
    def post(self) -> None:
        self.device.record(self.climate.sample(datetime.now(UTC)), units=Climate.UNITS)
        with self.timed("POST /devices/[id]/readings"):
            self.device.flush()
        self.posts += 1
        if self.posts % 6 == 0:
            with self.timed("GET /devices/[id]/commands"):
                self.device.handle_commands(lambda command: {"ok": True})
        if time.monotonic() - self.last_heartbeat > 60:
            with self.timed("POST /devices/[id]/heartbeat"):
                self.device.heartbeat()
            self.last_heartbeat = time.monotonic()

    def on_stop(self) -> None:
        self.device.close()


class DashboardUser(User):
    weight = 3
    wait_time = between(2, 8)

    def on_start(self) -> None:
        self.api = Shared.session(self.host)
        self.timed = Timed(self.environment)
        for _ in range(100):  # a dashboard shows devices: wait for the first to exist
            if Shared.devices:
                break
            gevent.sleep(0.1)

    def _device(self) -> int | None:
        return random.choice(Shared.devices) if Shared.devices else None

    @task(5)
    def latest(self) -> None:
        if (device_id := self._device()) is not None:
            with self.timed("GET /readings/latest"):
                self.api.latest(device_id=device_id)

    @task(2)
    def aggregate_hour(self) -> None:
        if (device_id := self._device()) is not None:
            with self.timed("GET /readings/aggregate 5m/1h"):
                self.api.aggregate("5m", fn=["avg", "min", "max"], device_id=device_id,
                                   start="-1h")

    @task(1)
    def aggregate_day(self) -> None:
        if (device_id := self._device()) is not None:
            with self.timed("GET /readings/aggregate 1h/1d"):
                self.api.aggregate("1h", fn="avg", device_id=device_id, start="-1d")

    @task(1)
    def recent(self) -> None:
        if (device_id := self._device()) is not None:
            with self.timed("GET /readings 15m"):
                list(self.api.readings(device_id=device_id, start="-15m", order="desc",
                                       limit=500))


class LiveUser(User):
    weight = 2
    wait_time = constant_pacing(20)

    def on_start(self) -> None:
        self.api = Shared.session(self.host)
        self.socket: websocket.WebSocket | None = None
        self.reader: gevent.Greenlet | None = None
        self.pongs: gevent.queue.Queue = gevent.queue.Queue()
        self._connect()

    def _connect(self) -> None:
        url = self.api.base.replace("http", "ws", 1) + "/ws"  # under /api/v1, as every route
        started = time.perf_counter()
        exception = None
        try:
            self.socket = websocket.create_connection(
                f"{url}?token={self.api.access_token()}", timeout=30)
            self.socket.send(json.dumps({"type": "subscribe", "id": "all",
                                         "topic": "readings"}))
            self.reader = gevent.spawn(self._read, self.socket)
        except (OSError, websocket.WebSocketException, ClientError) as exc:
            exception, self.socket = exc, None
        events.request.fire(request_type="WS", name="WS connect", response_length=0,
                            response_time=(time.perf_counter() - started) * 1000,
                            exception=exception, context={})

    def _read(self, socket: websocket.WebSocket) -> None:
        while True:
            try:
                text = socket.recv()
                message = json.loads(text)
            except (OSError, websocket.WebSocketException, ValueError):
                return  # closed: the next task reconnects
            if message.get("type") == "pong":
                self.pongs.put(time.perf_counter())
            elif message.get("type") == "readings":
                now = datetime.now(UTC)
                for item in message["items"]:
                    delay = (now - datetime.fromisoformat(item["ts"])).total_seconds()
                    events.request.fire(request_type="WS", name="WS reading",
                                        response_time=max(0.0, delay) * 1000,
                                        response_length=len(text), exception=None,
                                        context={})

    @task
    def ping(self) -> None:
        if self.socket is None or not self.socket.connected:
            self._connect()
            return
        started = time.perf_counter()
        exception = None
        try:
            self.socket.send(json.dumps({"type": "ping"}))
            self.pongs.get(timeout=10)
        except (OSError, websocket.WebSocketException, gevent.queue.Empty) as exc:
            exception = exc
        events.request.fire(request_type="WS", name="WS ping", response_length=0,
                            response_time=(time.perf_counter() - started) * 1000,
                            exception=exception, context={})

    def on_stop(self) -> None:
        if self.socket is not None:
            self.socket.close()
        if self.reader is not None:
            self.reader.kill()
