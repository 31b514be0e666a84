import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from telemetra.app import create_app
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, make_settings
from tests.helpers import (
    Api,
    eventually,  # noqa: F401  (re-exported to the tests here)
)
from tests.mosquitto import Broker


@pytest.fixture
def broker(tmp_path) -> Iterator[Broker]:
    broker = Broker(tmp_path / "broker")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def dynsec_broker(tmp_path) -> Iterator[Broker]:
    broker = Broker(tmp_path / "broker", dynsec=True)
    broker.start()
    yield broker
    broker.stop()


class Platform:
    """Telemetra in this process (TestClient, lifespan run) connected to a test broker."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.api = Api(client)
        self.root = self.api.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        self.prefix = client.app.state.settings.mqtt_prefix

    def topic(self, device_id: int, kind: str) -> str:
        return f"{self.prefix}/devices/{device_id}/{kind}"

    def metrics(self) -> dict:
        return self.api.get("/system/metrics", self.root).json()["mqtt"]

    def readings(self, device_id: int, **params) -> list[dict]:
        response = self.api.get("/readings", self.root,
                                params={"device_id": device_id, "limit": 10000,
                                        "order": "asc", **params})
        assert response.status_code == 200, response.text
        return response.json()["items"]

    def wait_handled(self, count: int, timeout: float = 10) -> dict:
        return eventually(lambda: (m := self.metrics())["handled"] >= count and m,
                          timeout=timeout)


def start_platform(database_url: str, broker: Broker, **overrides) -> TestClient:
    settings = make_settings(database_url, mqtt_url=broker.url,
                             mqtt_auth="dynsec" if broker.dynsec else "open",
                             mqtt_client_id=f"platform-{uuid.uuid4().hex[:8]}", **overrides)
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    client.__enter__()
    eventually(lambda: client.get("/health").json()["mqtt"] == "connected")
    return client


@pytest.fixture
def platform(database_url, broker) -> Iterator[Platform]:
    client = start_platform(database_url, broker, max_body_bytes=4096)
    yield Platform(client)
    client.__exit__(None, None, None)


@pytest.fixture
def dynsec_platform(database_url, dynsec_broker) -> Iterator[Platform]:
    client = start_platform(database_url, dynsec_broker)
    yield Platform(client)
    client.__exit__(None, None, None)
