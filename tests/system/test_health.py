"""Health and version."""

import os

import pytest
from pydantic import ValidationError

from telemetra import __version__
from telemetra.settings import Settings


def test_health_reports_database_up(api):
    response = api.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "up", "mqtt": "disabled",
                               "mqtt_auth": None, "version": __version__}


def test_health_is_503_when_the_database_is_unreachable(api, client, backend):
    # Point the running app at a database that does not answer.
    from telemetra.db.engine import create_engine

    good = client.app.state.engine
    bad_url = ("sqlite:////nonexistent-dir/telemetra.db" if backend == "sqlite"
               else "postgresql://postgres@127.0.0.1:1/none")
    client.app.state.engine = create_engine(bad_url)
    try:
        response = api.get("/health")
        assert response.status_code == 503
        assert response.json()["database"] == "down"
        # Endpoints that need the database answer 503 problem+json, never 500.
        failing = api.get("/api/v1/system/version")
        assert failing.status_code == 200
        login = api.post("/auth/login", json={"username": "x", "password": "y"})
        assert login.status_code == 503 and login.json()["code"] == "unavailable"
    finally:
        client.app.state.engine = good


def test_version(api):
    assert api.get("/system/version").json() == {"version": __version__}


def test_production_refuses_the_development_secret_and_admin_password(monkeypatch):
    for name in [n for n in os.environ if n.startswith("TELEMETRA_")]:
        monkeypatch.delenv(name)
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(_env_file=None, env="production")
    with pytest.raises(ValidationError, match="ADMIN_PASSWORD"):
        Settings(_env_file=None, env="production", secret_key="s" * 40,
                 admin_username="admin", admin_password="telemetra-admin")
    Settings(_env_file=None, env="production", secret_key="s" * 40)
