"""The three sign-up modes."""

from fastapi.testclient import TestClient

from telemetra.app import create_app
from tests.conftest import make_settings
from tests.helpers import Api


def test_tenant_mode_makes_each_signup_the_owner_of_a_new_organization(database_url):
    with TestClient(create_app(make_settings(database_url, signup_mode="tenant"))) as client:
        api = Api(client)
        first, first_headers = api.signup_tenant_owner()
        second, second_headers = api.signup_tenant_owner()
        assert first["role"] == second["role"] == "owner"
        assert first["organization_id"] != second["organization_id"]
        users = api.get("/users", first_headers).json()
        assert [user["id"] for user in users["items"]] == [first["id"]]


def test_closed_mode_refuses_signup(database_url):
    with TestClient(create_app(make_settings(database_url, signup_mode="closed"))) as client:
        response = Api(client).post("/auth/signup", json={"username": "x-user",
                                                          "password": "password-123"})
        assert response.status_code == 403
        assert response.json()["code"] == "forbidden"


def test_processes_starting_together_seed_once(database_url):
    """telemetra serve --workers N: every worker seeds at start, and exactly one wins."""
    import asyncio

    from sqlalchemy import func, select

    from telemetra.auth.service import seed
    from telemetra.db.engine import create_engine
    from telemetra.db.tables import organizations, users

    settings = make_settings(database_url)

    async def start_together():
        engines = [create_engine(database_url) for _ in range(4)]
        try:
            await asyncio.gather(*[seed(engine, settings) for engine in engines])
            async with engines[0].connect() as conn:
                return (await conn.scalar(select(func.count()).select_from(organizations)),
                        await conn.scalar(select(func.count()).select_from(users)))
        finally:
            for engine in engines:
                await engine.dispose()

    assert asyncio.run(start_together()) == (1, 1)
