"""Small conveniences for tests: over the HTTP API (log in, add users, register devices),
reading what a row holds in the database, holding the readings table's write lock, and waiting
for a condition."""

import asyncio
import itertools
import time
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

API = "/api/v1"
_names = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}{next(_names)}"


def eventually(check: Callable[[], object], timeout: float = 10, interval: float = 0.05):
    """Wait until ``check()`` is truthy and return it; fail with its last value otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout}s (last: {value!r})")
        time.sleep(interval)


class Api:
    def __init__(self, client: TestClient) -> None:
        self.client = client

    def url(self, path: str) -> str:
        return path if path.startswith("/health") or path.startswith(API) else API + path

    def request(self, method: str, path: str, headers: dict | None = None, **kwargs):
        return self.client.request(method, self.url(path), headers=headers, **kwargs)

    def get(self, path, headers=None, **kw):
        return self.request("GET", path, headers, **kw)

    def post(self, path, headers=None, **kw):
        return self.request("POST", path, headers, **kw)

    def patch(self, path, headers=None, **kw):
        return self.request("PATCH", path, headers, **kw)

    def put(self, path, headers=None, **kw):
        return self.request("PUT", path, headers, **kw)

    def delete(self, path, headers=None, **kw):
        return self.request("DELETE", path, headers, **kw)

    def tokens(self, username: str, password: str) -> dict:
        response = self.post("/auth/login", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        return response.json()

    def login(self, username: str, password: str) -> dict:
        return bearer(self.tokens(username, password)["access_token"])

    def add_user(self, admin: dict, role: str = "member", password: str = "password-123",
                 **fields) -> tuple[dict, dict]:
        """Create a user in the admin's organization; returns (user, auth headers)."""
        username = fields.pop("username", unique(role))
        response = self.post("/users", admin, json={"username": username, "password": password,
                                                    "role": role, **fields})
        assert response.status_code == 201, response.text
        return response.json(), self.login(username, password)

    def signup_tenant_owner(self, password: str = "password-123") -> tuple[dict, dict]:
        """Sign up (tenant mode must be on); returns (user, auth headers)."""
        username = unique("owner")
        response = self.post("/auth/signup", json={"username": username, "password": password})
        assert response.status_code == 201, response.text
        return response.json(), self.login(username, password)

    def device(self, headers: dict, **fields) -> dict:
        response = self.post("/devices", headers, json={"name": unique("device"), **fields})
        assert response.status_code == 201, response.text
        return response.json()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def device_key(key: str) -> dict:
    return {"X-API-Key": key}


def stored_scalar(database_url: str, statement):
    """What ``statement`` (one column of one row) reads from the database itself, past the
    API: how a secret is stored, say."""
    from telemetra.db.engine import create_engine

    async def read():
        engine = create_engine(database_url)
        try:
            async with engine.connect() as conn:
                return await conn.scalar(statement)
        finally:
            await engine.dispose()

    return asyncio.run(read())


async def lock_readings(conn: AsyncConnection) -> AsyncConnection:
    """Begin a transaction on ``conn`` that holds the readings table's write lock (SQLite's
    write lock, or an EXCLUSIVE table lock on PostgreSQL) until it ends: writers wait.
    Returns the connection to end it on."""
    if conn.dialect.name == "sqlite":
        conn = await conn.execution_options(sqlite_write=True)
        await conn.begin()
        await conn.execute(text("DELETE FROM readings WHERE 1 = 0"))
    else:
        await conn.begin()
        await conn.execute(text("LOCK TABLE readings IN EXCLUSIVE MODE"))
    return conn


class Tenants:
    """Two organizations of a tenant-mode app: ``owner`` and ``viewer`` are headers of users of
    the first, ``other`` of the second's owner (whose objects the first must never reach)."""

    def __init__(self, api: Api) -> None:
        self.api = api
        _, self.owner = api.signup_tenant_owner()
        _, self.viewer = api.add_user(self.owner, "viewer")
        _, self.other = api.signup_tenant_owner()
