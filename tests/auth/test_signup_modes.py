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
