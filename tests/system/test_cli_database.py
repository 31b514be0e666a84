"""A command that reads the database (export, import) on one that is missing, unreachable or
not migrated: one line naming the URL and `telemetra migrate`, exit 1, nothing left behind."""

import os
import sqlite3
import subprocess
import sys
import uuid

import pytest
from sqlalchemy.engine import make_url

from tests import pgcluster


def _run(cwd, *args, database_url: str | None = None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRA_")}
    env.update({"PYTHONPATH": ":".join(sys.path), "TELEMETRA_LOG_LEVEL": "WARNING"})
    if database_url is not None:
        env["TELEMETRA_DATABASE_URL"] = database_url
    return subprocess.run([sys.executable, "-m", "telemetra", *args], cwd=cwd, env=env,
                          text=True, capture_output=True, timeout=120)


def _one_line(result) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr  # no traceback
    assert "Traceback" not in result.stderr
    return lines[0]


def test_export_outside_the_repository_creates_nothing_and_says_what_to_do(tmp_path):
    exported = _run(tmp_path, "export", "-o", "out.csv")
    line = _one_line(exported)
    assert line == (f"error: no database at {tmp_path / 'telemetra.db'} "
                    "(TELEMETRA_DATABASE_URL=sqlite:///./telemetra.db): run `telemetra migrate` "
                    "to create it, or set TELEMETRA_DATABASE_URL to the database you mean")
    assert list(tmp_path.iterdir()) == []  # no empty telemetra.db, no out.csv
    assert "no database at" in _one_line(_run(tmp_path, "export"))
    data = tmp_path / "data.csv"
    data.write_text("key,ts,value\nt,2026-01-01T00:00:00Z,1\n")
    assert "run `telemetra migrate`" in _one_line(_run(tmp_path, "import", str(data),
                                                       "--device-id", "1"))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data.csv"]


def test_an_unmigrated_sqlite_file_is_named_too(tmp_path):
    sqlite3.connect(tmp_path / "empty.db").close()
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    line = _one_line(_run(tmp_path, "export", database_url=url))
    assert line == (f"error: the database at {url} has no Telemetra tables: run "
                    "`telemetra migrate` first")
    migrated = _run(tmp_path, "migrate", database_url=url)
    assert migrated.returncode == 0, migrated.stderr
    exported = _run(tmp_path, "export", database_url=url)
    assert exported.returncode == 0 and exported.stdout.startswith("device_id,"), exported.stderr


def test_postgresql_missing_or_unmigrated(pg_admin_url, tmp_path):
    admin = make_url(pg_admin_url)
    missing = admin.set(database=f"nope_{uuid.uuid4().hex[:8]}", password="secret-pw")
    line = _one_line(_run(tmp_path, "export", database_url=missing.render_as_string(False)))
    assert line.startswith(f"error: cannot open the database at "
                           f"{missing.render_as_string(hide_password=True)}: ")
    assert "secret-pw" not in line and "does not exist" in line

    name = f"telemetra_bare_{uuid.uuid4().hex[:8]}"
    url = pgcluster.create_database(pg_admin_url, name)
    try:
        line = _one_line(_run(tmp_path, "export", database_url=url))
        assert "has no Telemetra tables: run `telemetra migrate` first" in line
    finally:
        pgcluster.drop_database(pg_admin_url, name)


@pytest.mark.parametrize("command", ["version", "--help"])
def test_commands_that_need_no_database_still_work_anywhere(tmp_path, command):
    assert _run(tmp_path, command).returncode == 0
    assert list(tmp_path.iterdir()) == []


def test_migrate_says_one_line_not_alembics(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    env_level = {"TELEMETRA_LOG_LEVEL": "INFO"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRA_")}
    env.update({"PYTHONPATH": ":".join(sys.path), "TELEMETRA_DATABASE_URL": url, **env_level})
    first = subprocess.run([sys.executable, "-m", "telemetra", "migrate"], env=env, text=True,
                           capture_output=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "alembic" not in first.stderr, first.stderr
    assert "database schema migrated from nothing to" in first.stderr
    again = subprocess.run([sys.executable, "-m", "telemetra", "migrate"], env=env, text=True,
                           capture_output=True, timeout=120)
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert again.stdout.strip() == "database is up to date"
