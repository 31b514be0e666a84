"""The ``telemetra`` command: TELEMETRA_WORKERS, and sub-command modules that stand alone.

- ``telemetra serve`` runs TELEMETRA_WORKERS worker processes; ``--workers`` overrides it.
- ``telemetra.readings.cli`` imports and loads its settings without the root command
  (``telemetra.cli``), which imports it: no import cycle; a bad setting is exit 2 either way.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME
from tests.server import free_port


def _env(**settings: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRA_")}
    env.update({"TELEMETRA_ENV": "test", "TELEMETRA_LOG_LEVEL": "WARNING",
                "TELEMETRA_ADMIN_USERNAME": ADMIN_USERNAME,
                "TELEMETRA_ADMIN_PASSWORD": ADMIN_PASSWORD,
                **{f"TELEMETRA_{k.upper()}": v for k, v in settings.items()}})
    return env


def _workers(parent: int) -> int:
    """Worker processes of uvicorn's parent: children started by multiprocessing's spawn
    (not its resource tracker)."""
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"spawn_main" in cmdline:
            count += 1
    return count


def _serve_workers(tmp_path: Path, args: list[str], **settings: str) -> int:
    port = free_port()
    env = _env(database_url=f"sqlite:///{tmp_path / 'cli.db'}", **settings)
    with open(tmp_path / "serve.log", "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "telemetra", "serve", "--port",
                                    str(port), *args], env=env, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the server did not start"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        # Each worker answers once started; the parent starts them all at once.
        time.sleep(1.0)
        return _workers(process.pid)
    finally:
        process.terminate()
        process.wait(20)


def test_serve_runs_telemetra_workers_processes_and_the_flag_overrides_it(tmp_path):
    assert _serve_workers(tmp_path, [], workers="2") == 2
    assert _serve_workers(tmp_path, ["--workers", "3"], workers="2") == 3


def test_the_readings_commands_stand_without_the_root_command(tmp_path):
    script = ("import sys, typer\n"
              "import telemetra.readings.cli as readings_cli\n"
              "try:\n"
              "    readings_cli._settings()\n"
              "except typer.Exit as exc:\n"
              "    print('exit', exc.exit_code)\n"
              "print('root imported', 'telemetra.cli' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", script], env=_env(port="not-a-port"),
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "exit 2" in result.stdout
    assert "root imported False" in result.stdout
    assert "configuration error" in result.stderr

    exported = subprocess.run([sys.executable, "-m", "telemetra", "export"], cwd=tmp_path,
                              env=_env(port="not-a-port"), capture_output=True, text=True,
                              timeout=60)
    assert exported.returncode == 2
    assert "configuration error" in exported.stderr


def test_help_lists_the_commands_and_the_workers_setting(tmp_path):
    root = subprocess.run([sys.executable, "-m", "telemetra", "--help"], env=_env(),
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert root.returncode == 0, root.stderr
    for command in ("serve", "migrate", "import", "export"):
        assert command in root.stdout
    serve = subprocess.run([sys.executable, "-m", "telemetra", "serve", "--help"], env=_env(),
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert serve.returncode == 0, serve.stderr
    assert "TELEMETRA_WORKERS" in serve.stdout
