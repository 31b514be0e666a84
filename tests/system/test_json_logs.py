"""TELEMETRA_LOG_FORMAT=json: a real ``telemetra serve``, one JSON object a line, each
request's lines with its request id, and no secret anywhere in the log."""

import json

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME
from tests.server import API, Server


@pytest.mark.parametrize("workers", [1, 2])
def test_json_logs_carry_request_ids_and_no_secret(tmp_path, workers):
    log_path = tmp_path / "server.log"
    server = Server(f"sqlite:///{tmp_path / 'json.db'}", log_path, workers=workers,
                    log_level="INFO", log_format="json")
    server.start()
    wrong_password = "Wr0ng-horse-battery-staple"
    try:
        tokens = httpx.post(server.base + API + "/auth/login",
                            json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}).json()
        access, refresh = tokens["access_token"], tokens["refresh_token"]
        headers = {"Authorization": f"Bearer {access}"}
        created = httpx.post(server.base + API + "/devices", headers=headers,
                             json={"name": "json-logged"})
        assert created.status_code == 201, created.text
        key = created.json()["api_key"]
        device_id = created.json()["id"]
        for body in ({"t": 1}, [{"key": "t", "value": 2}]):  # the fast path
            assert httpx.post(server.base + API + "/readings", headers={"X-API-Key": key},
                              json=body).status_code == 202
        assert httpx.post(server.base + API + f"/devices/{device_id}/readings",
                          headers={"Authorization": f"Bearer {key}"},
                          json={"t": 3}).status_code == 202
        # A careless client: the key in the URL (the route answers, the access log sees it).
        httpx.post(server.base + API + f"/readings?api_key={key}", json={"t": 4})
        failed = httpx.post(server.base + API + "/auth/login",
                            json={"username": ADMIN_USERNAME, "password": wrong_password})
        assert failed.status_code == 401
        assert httpx.post(server.base + API + "/auth/refresh",
                          json={"refresh_token": refresh}).status_code == 200
        traced = httpx.get(server.base + API + "/devices", headers={
            **headers, "X-Request-ID": "trace-me-42"})
        assert traced.headers["x-request-id"] == "trace-me-42"
    finally:
        server.stop()

    text = log_path.read_text()
    lines = [line for line in text.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message", "request_id"} <= r.keys()
               for r in records), records[:3]
    requests = [r for r in records if r["logger"] == "uvicorn.access"]
    assert len(requests) >= 8, records
    assert all(r["request_id"] for r in requests)  # every request's line names its request
    assert len({r["request_id"] for r in requests}) == len(requests)
    traced_lines = [r for r in requests if r["request_id"] == "trace-me-42"]
    assert traced_lines and traced_lines[0]["path"] == "/api/v1/devices"
    assert traced_lines[0]["status"] == 200 and traced_lines[0]["method"] == "GET"
    for secret in (key, key[4:], ADMIN_PASSWORD, wrong_password, access, refresh, refresh[4:]):
        assert secret not in text, f"a secret was logged: {secret[:10]}..."
    assert "api_key=[REDACTED]" in text
