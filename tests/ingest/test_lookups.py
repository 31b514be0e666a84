"""The lookups of a cache miss (``telemetra.ingest.lookups``): on SQLite a connection of their
own, which must always read the latest commit; a device first seen has all its sensors read
at once."""

import asyncio

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, update

from telemetra.app import create_app
from telemetra.auth.principals import DEVICE_KEY_LOOKUP_CHARS, DEVICE_KEY_PREFIX
from telemetra.db.engine import create_engine
from telemetra.db.tables import devices
from telemetra.ingest.lookups import SqliteLookups
from telemetra.kit.errors import Unavailable
from telemetra.kit.secrets import random_token, token_hash
from telemetra.kit.timeutil import utcnow
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, make_settings
from tests.helpers import Api, device_key

T = 1767268800


def _write_elsewhere(database_url: str, statement) -> None:
    """A change made by another process: straight in the database, no event here."""

    async def run() -> None:
        engine = create_engine(database_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(statement)
        finally:
            await engine.dispose()

    asyncio.run(run())


def test_a_device_created_after_a_lookup_is_found_by_the_next(database_url):
    # The SQLite lookups' connection must not keep reading the snapshot of its first query.
    with TestClient(create_app(make_settings(database_url))) as client:
        api = Api(client)
        root = api.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        first = api.device(root)
        assert api.post("/readings", device_key(first["api_key"]),
                        json={"ts": T, "values": {"t": 1}}).status_code == 202
        key = random_token(DEVICE_KEY_PREFIX)
        now = utcnow()
        _write_elsewhere(database_url, insert(devices).values(
            organization_id=first["organization_id"], name="made elsewhere", status="active",
            api_key_prefix=key[:DEVICE_KEY_LOOKUP_CHARS], api_key_hash=token_hash(key),
            offline_after_seconds=300, created_at=now, updated_at=now))
        response = api.post("/readings", device_key(key), json={"ts": T, "values": {"t": 2}})
        assert (response.status_code, response.json()["accepted"]) == (202, 1)
        wrong = key[:-1] + ("A" if key[-1] != "A" else "B")  # its prefix, not its key
        assert api.post("/readings", device_key(wrong),
                        json={"ts": T, "values": {"t": 3}}).status_code == 401


def test_a_device_deactivated_before_its_first_reading_here_is_refused(database_url):
    with TestClient(create_app(make_settings(database_url))) as client:
        api = Api(client)
        root = api.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        device = api.device(root)
        _write_elsewhere(database_url, update(devices).where(devices.c.id == device["id"])
                         .values(status="inactive"))
        response = api.post("/readings", device_key(device["api_key"]),
                            json={"ts": T, "values": {"t": 1}})
        assert response.status_code == 403
        assert "inactive" in response.json()["detail"]


def test_a_device_first_seen_has_all_its_sensors_read_at_once(database_url):
    with TestClient(create_app(make_settings(database_url))) as client:
        api = Api(client)
        root = api.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        device = api.device(root)
        key = device_key(device["api_key"])
        names = ["temperature", "humidity", "pressure", "battery", "rssi"]
        assert api.post("/readings", key, json={"ts": T, "values": dict.fromkeys(names, 1)}
                        ).json()["accepted"] == 5
        ingestor = client.app.state.ingestor
        ingestor.forget_everything()  # as in a process that has not seen the device yet
        assert api.post("/readings", key, json={"ts": T + 1, "values": {"humidity": 2}}
                        ).json()["accepted"] == 1
        assert ingestor.cached_sensors == 5  # the four others need no query of their own
        for offset, name in enumerate(names, start=2):
            assert api.post("/readings", key, json={"ts": T + offset, "values": {name: 3}}
                            ).json()["accepted"] == 1
        listed = api.get("/sensors", root, params={"device_id": device["id"]}).json()
        assert listed["total"] == 5  # none created twice


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_sqlite_database_that_cannot_be_read_is_unavailable_not_an_error(backend, tmp_path):
    lookups = SqliteLookups(str(tmp_path))  # a directory: SQLite cannot open it

    async def run() -> None:
        try:
            with pytest.raises(Unavailable):
                await lookups.device_by_key_prefix("tdk_abcdefgh")
        finally:
            await lookups.close()

    asyncio.run(run())
