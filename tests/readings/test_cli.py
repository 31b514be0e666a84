"""telemetra import / export on the command line, against a real database."""

import json
import subprocess
import sys

from tests.helpers import device_key


def run(settings, *args, input_text=None):
    env = {"TELEMETRA_DATABASE_URL": settings.database_url, "PATH": "/usr/bin:/bin",
           "PYTHONPATH": ":".join(sys.path)}
    return subprocess.run([sys.executable, "-m", "telemetra", *args], env=env, text=True,
                          capture_output=True, input=input_text, timeout=120)


def test_import_then_export_round_trip(api, root, settings, tmp_path):
    device = api.device(root)
    data = tmp_path / "history.csv"
    data.write_text("device_id,key,ts,value\n" + "".join(
        f"{device['id']},t,2026-02-01T00:{i // 60:02d}:{i % 60:02d}Z,{i}\n" for i in range(500))
        + f"{device['id']},t,not-a-time,1\n")
    imported = run(settings, "import", str(data))
    assert imported.returncode == 1  # one line was rejected, and it says which
    assert "accepted 500, duplicates 0, rejected 1" in imported.stdout
    assert "line 502: ts: 'not-a-time' is not a time; use ISO 8601" in imported.stderr
    assert len(api.get("/readings", root, params={"device_id": device["id"],
                                                  "limit": 1000}).json()["items"]) == 500

    out = tmp_path / "out.ndjson"
    exported = run(settings, "export", "--format", "ndjson", "--device-id", str(device["id"]),
                   "--output", str(out))
    assert exported.returncode == 0, exported.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 500 and rows[0]["ts"] == "2026-02-01T00:00:00Z" and rows[-1]["value"] == 499


def test_export_to_stdout_with_a_relative_start(api, root, settings):
    device = api.device(root)
    api.post("/readings", device_key(device["api_key"]), json={"t": 1})
    result = run(settings, "export", "--device-id", str(device["id"]), "--start", "-1h")
    assert result.returncode == 0
    assert result.stdout.splitlines()[0].startswith("device_id,sensor_id,key,ts")
    assert len(result.stdout.splitlines()) == 2
    bad = run(settings, "export", "--start", "someday")
    assert bad.returncode == 2 and "start" in bad.stderr
