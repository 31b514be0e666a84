"""Security headers on every response, HSTS in production over HTTPS only, CORS from
settings, and /docs and /redoc working under the policy from local assets (no CDN)."""

import base64
import hashlib
import re

from fastapi.testclient import TestClient

from telemetra.app import create_app
from tests.conftest import make_settings

PRODUCTION = {"env": "production", "secret_key": "a-production-secret-of-at-least-32-chars!",
              "admin_password": "not-the-development-one"}


def policy(response) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in
            response.headers["content-security-policy"].split(";") if d.strip()}


def test_every_response_has_the_security_headers(api, root, client):
    for response in (client.get("/health"), api.get("/devices", root),
                     api.get("/devices/999999", root), client.get("/nowhere"),
                     api.post("/auth/login", json={"username": "x", "password": "wrong-one"}),
                     client.get("/metrics"), client.get("/openapi.json")):
        assert response.headers["x-content-type-options"] == "nosniff", response.url
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"
        csp = policy(response)
        assert csp["default-src"] == ["'self'"] and csp["script-src"] == ["'self'"]
        assert csp["frame-ancestors"] == ["'none'"] and csp["object-src"] == ["'none'"]
        assert "strict-transport-security" not in response.headers  # not production


def test_hsts_only_in_production_over_https(database_url):
    settings = make_settings(database_url, **PRODUCTION)
    with TestClient(create_app(settings), base_url="https://telemetra.test") as https:
        hsts = https.get("/health").headers["strict-transport-security"]
        assert hsts.startswith("max-age=31536000")
    with TestClient(create_app(settings), base_url="http://telemetra.test") as http:
        assert "strict-transport-security" not in http.get("/health").headers
    with TestClient(create_app(make_settings(database_url)),
                    base_url="https://telemetra.test") as development:
        assert "strict-transport-security" not in development.get("/health").headers


def test_cors_preflight_from_an_allowed_origin_only(database_url):
    settings = make_settings(database_url, cors_origins="https://ui.example, https://b.example")
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    with TestClient(create_app(settings)) as client:
        allowed = client.options("/api/v1/devices",
                                 headers={"Origin": "https://ui.example", **preflight})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://ui.example"
        assert "POST" in allowed.headers["access-control-allow-methods"]
        assert allowed.headers["access-control-allow-credentials"] == "true"
        refused = client.options("/api/v1/devices",
                                 headers={"Origin": "https://evil.example", **preflight})
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers
        simple = client.get("/health", headers={"Origin": "https://b.example"})
        assert simple.headers["access-control-allow-origin"] == "https://b.example"
        assert "X-Request-ID" in simple.headers["access-control-expose-headers"]
    with TestClient(create_app(make_settings(database_url))) as default:  # none by default
        response = default.options("/api/v1/devices",
                                   headers={"Origin": "https://ui.example", **preflight})
        assert "access-control-allow-origin" not in response.headers


def _inline_script_hashes(html: str) -> set[str]:
    return {"'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
            for s in re.findall(r"<script>(.*?)</script>", html, re.DOTALL)}


def test_docs_and_redoc_load_local_assets_their_policy_allows(client):
    for page, assets in (("/docs", ("swagger-ui-bundle.js", "swagger-ui.css")),
                         ("/redoc", ("redoc.standalone.js",))):
        response = client.get(page)
        assert response.status_code == 200
        html = response.text
        sources = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert sources and all(s.startswith("/") for s in sources), sources  # no CDN
        for asset in assets:
            served = client.get(f"/static/docs/{asset}")
            assert served.status_code == 200 and len(served.content) > 10_000
            assert served.headers["x-content-type-options"] == "nosniff"
        csp = policy(response)
        assert set(csp["script-src"]) == {"'self'"} | _inline_script_hashes(html)
        assert csp["frame-ancestors"] == ["'none'"]
    assert "blob:" in policy(client.get("/redoc"))["worker-src"]  # ReDoc's worker
    assert len(policy(client.get("/docs"))["script-src"]) == 2  # Swagger UI's inline start-up
    redirect = client.get("/docs/oauth2-redirect")
    assert redirect.status_code == 200
    assert set(policy(redirect)["script-src"]) == {"'self'"} | _inline_script_hashes(
        redirect.text)
