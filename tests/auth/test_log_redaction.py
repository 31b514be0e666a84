"""Credentials never reach the logs: a real ``telemetra serve``, its access log grepped.

A client that puts its device key in the URL is refused, and the key must not be written to
the log either (nor refresh tokens, access tokens or passwords in query parameters).
"""

import subprocess
import sys
import textwrap

import httpx
import pytest

from tests.server import API, Server


@pytest.mark.parametrize("workers", [1, 2])
def test_keys_and_tokens_in_urls_are_redacted_from_the_log(tmp_path, workers):
    log_path = tmp_path / "server.log"
    server = Server(f"sqlite:///{tmp_path / 'logs.db'}", log_path, workers=workers,
                    log_level="INFO")
    server.start()
    try:
        headers = server.login()
        access = headers["Authorization"].removeprefix("Bearer ")
        created = httpx.post(server.base + API + "/devices", headers=headers,
                             json={"name": "leaky"})
        assert created.status_code == 201, created.text
        key = created.json()["api_key"]
        refresh = httpx.post(server.base + API + "/auth/login",
                             json={"username": "root", "password": "root-password-for-tests"}
                             ).json()["refresh_token"]
        calls = [
            f"/devices?api_key={key}",
            f"/readings/latest?limit=5&api%5Fkey={key}",
            f"/devices/{key}",
            f"/auth/me?access_token={access}&password=hunter2-secret",
            f"/sensors?token=opaque-secret-value&refresh_token={refresh}",
            f"/devices?key={key.replace('_', '%5F', 1)}",
        ]
        for path in calls:
            response = httpx.get(server.base + API + path)
            assert response.status_code in (401, 404, 422), (path, response.status_code)
    finally:
        server.stop()

    log = log_path.read_text()
    assert "GET /api/v1/devices?api_key=[REDACTED] HTTP/1.1" in log, log[-3000:]
    assert log.count("[REDACTED]") >= 8, log[-3000:]
    for secret in (key, key[4:], access, refresh, refresh[4:], "hunter2-secret",
                   "opaque-secret-value"):
        assert secret not in log, f"a credential was logged: {secret[:12]}..."
    assert "tdk_" not in log.replace("tdk_[REDACTED]", "")


def test_telemetra_and_uvicorn_error_loggers_redact_too():
    """The same filter on every handler ``telemetra serve`` configures (in a process of its
    own, as logging is global)."""
    script = textwrap.dedent("""
        import logging, logging.config
        from telemetra.kit.logging import configure, uvicorn_config
        configure("INFO")
        logging.getLogger("telemetra.x").warning("key %s in %s", "tdk_AAAA1111", "/p?token=zz9")
        logging.config.dictConfig(uvicorn_config("INFO"))
        logging.getLogger("uvicorn.error").error("bad request /d?api_key=tdk_BBBB2222")
        logging.getLogger("telemetra.y").info("refresh %s", "trt_CCCC3333")
        try:
            raise ValueError("tdk_DDDD4444")
        except ValueError:
            logging.getLogger("telemetra.z").exception("failed")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for secret in ("AAAA1111", "zz9", "BBBB2222", "CCCC3333", "DDDD4444"):
        assert secret not in output, output
    assert output.count("[REDACTED]") == 5, output
