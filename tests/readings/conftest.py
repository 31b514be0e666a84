"""Fixtures shared by the readings tests."""

import pytest
from fastapi.testclient import TestClient

from telemetra.app import create_app
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, make_settings
from tests.helpers import Api, device_key


@pytest.fixture
def device(api, root):
    """A device of the root organization."""
    return api.device(root)


@pytest.fixture
def key(device):
    """That device's key headers."""
    return device_key(device["api_key"])


@pytest.fixture
def two_tenants(database_url):
    """A tenant app: the root organization with a site, a device and one reading at
    2026-05-01T00:00Z, and the owner of another organization."""
    with TestClient(create_app(make_settings(database_url, signup_mode="tenant"))) as client:
        api = Api(client)
        root = api.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        _, other = api.signup_tenant_owner()
        site = api.post("/sites", root, json={"name": "Mine"}).json()
        device = api.device(root, site_id=site["id"])
        assert api.post("/readings", device_key(device["api_key"]), json={
            "ts": "2026-05-01T00:00:00Z", "values": {"t": 1.0}}).status_code == 202
        yield {"api": api, "root": root, "other": other, "site": site, "device": device}
