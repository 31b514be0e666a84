"""How Telemetra serves its web UI: the app's pages answer index.html, hashed assets are
cached for a year, nothing of the API is shadowed, and an unbuilt UI says how to build it."""

import re

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from telemetra.web.endpoints import install_web


def test_the_pages_answer_the_app_and_its_assets_are_cached(server):
    for path in ["/", "/login", "/devices", "/devices/12", "/sites", "/alerts", "/readings",
                 "/dashboard", "/devices?q=kiln"]:
        response = httpx.get(server.base + path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["cache-control"] == "no-cache"
        assert '<div id="flash"' in response.text
    assert httpx.head(server.base + "/devices").status_code == 200
    page = httpx.get(server.base + "/").text
    assets = re.findall(r'(?:src|href)="(/assets/[^"]+)"', page)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    for asset in assets:
        response = httpx.get(server.base + asset)
        assert response.status_code == 200
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "//" not in "".join(re.findall(r'(?:src|href)="([^"]+)"', page))  # nothing remote


def test_nothing_of_the_api_is_shadowed(server):
    unknown = httpx.get(server.base + "/api/v1/no-such-thing")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert httpx.get(server.base + "/api/v1/devices").status_code == 401
    assert httpx.get(server.base + "/openapi.json").json()["info"]["title"] == "Telemetra"
    assert "swagger-ui" in httpx.get(server.base + "/docs").text
    assert "redoc" in httpx.get(server.base + "/redoc").text.lower()
    assert httpx.get(server.base + "/health").json()["database"] == "up"
    assert "telemetra_" in httpx.get(server.base + "/metrics").text
    for path in ["/devices/abc", "/nowhere", "/assets/missing.js"]:
        assert httpx.get(server.base + path).status_code == 404, path
    paths = httpx.get(server.base + "/openapi.json").json()["paths"]
    assert not [p for p in paths if not p.startswith(("/api/v1", "/health", "/metrics"))]


def test_an_unbuilt_ui_says_to_run_make_web(tmp_path):
    app = FastAPI()
    install_web(app, static=tmp_path / "static")  # no build there
    with TestClient(app) as client:
        for path in ["/", "/devices/3"]:
            response = client.get(path)
            assert response.status_code == 503
            assert response.headers["content-type"].startswith("text/html")
            assert "make web" in response.text
        assert client.get("/assets/index.js").status_code == 404


def test_a_build_appearing_later_is_served_without_a_restart(tmp_path):
    static = tmp_path / "static"
    app = FastAPI()
    install_web(app, static=static)
    with TestClient(app) as client:
        assert client.get("/").status_code == 503
        (static / "assets").mkdir(parents=True)
        (static / "index.html").write_text("<!doctype html><title>built</title>")
        (static / "assets" / "index-abc123.js").write_text("export {};")
        assert client.get("/").text.endswith("<title>built</title>")
        assert client.get("/assets/index-abc123.js").headers["cache-control"].endswith(
            "immutable")
