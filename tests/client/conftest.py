"""A real ``telemetra serve`` process per module and backend, and SDK clients for it."""

import uuid
from collections.abc import Iterator

import pytest

from telemetra.client import DeviceCredentials, UserClient
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME
from tests.helpers import eventually  # noqa: F401  (re-exported to the tests here)
from tests.server import Server


@pytest.fixture(scope="module")
def server(databases, tmp_path_factory) -> Iterator[Server]:
    server = Server(databases.new(), tmp_path_factory.mktemp("server") / "server.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def admin(server: Server) -> Iterator[UserClient]:
    with UserClient(server.base) as client:
        client.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        yield client


@pytest.fixture
def device(admin: UserClient) -> DeviceCredentials:
    return admin.create_device(f"sdk-{uuid.uuid4().hex[:8]}")
