"""bench/locustfile.py runs (briefly, headless) against a real server without a failure.
Locust is in the ``[load]`` extra, not ``[test]``: without it this is skipped."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("locust") is None,
                       reason="locust is not installed (pip install -e '.[load]')"),
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]
LOCUSTFILE = Path(__file__).parents[2] / "bench" / "locustfile.py"


def test_the_locustfile_runs_a_short_mix_without_failures(server):
    env = {**os.environ, "TELEMETRA_LOAD_USERNAME": ADMIN_USERNAME,
           "TELEMETRA_LOAD_PASSWORD": ADMIN_PASSWORD, "TELEMETRA_LOAD_INTERVAL": "0.5"}
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", server.base,
         "--headless", "-u", "15", "-r", "15", "-t", "6s", "--only-summary"],
        capture_output=True, text=True, env=env, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]  # locust exits 1 on any failure
    # Which dashboard query comes first is random: any of them.
    for name in ("POST /devices/[id]/readings", "GET /readings", "WS connect", "WS reading"):
        assert name in output, output[-4000:]
