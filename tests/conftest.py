"""Fixtures: every storage test runs on real SQLite and on a real, throwaway PostgreSQL.

PostgreSQL: a private cluster started with initdb/pg_ctl for the session (see pgcluster.py),
or the server named by TELEMETRA_TEST_DATABASE_URL. A schema-migrated template database is
made once; each test gets a copy (CREATE DATABASE ... TEMPLATE), each SQLite test a copy of
a migrated file. Nothing here skips: a missing PostgreSQL is an error, not a skip.

Where the machine has a roomy /dev/shm (Linux's memory file system) and TMPDIR is not set,
the suite's temporary files live there: the throwaway PostgreSQL cluster, the SQLite files,
the brokers' and servers' files. Measured here: CREATE DATABASE from the template took
200-480 ms on disk and 30 ms in memory, and test files that create a database per test ran
a third faster. Nothing the tests check depends on it (a process killed with -9 loses
nothing from the page cache either way).
"""

import asyncio
import itertools
import logging
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from telemetra.app import create_app
from telemetra.db.engine import create_engine
from telemetra.db.migrate import upgrade
from telemetra.settings import Settings
from tests import pgcluster
from tests.helpers import Api, Tenants

MEMORY_TMP = Path("/dev/shm")
MEMORY_TMP_FREE_BYTES = 4 << 30  # the suite's peak, with room to spare


def _temporary_files_in_memory() -> None:
    if "TMPDIR" in os.environ or not MEMORY_TMP.is_dir() or not os.access(MEMORY_TMP, os.W_OK):
        return
    stat = os.statvfs(MEMORY_TMP)
    if stat.f_bavail * stat.f_frsize >= MEMORY_TMP_FREE_BYTES:
        os.environ["TMPDIR"] = str(MEMORY_TMP)  # xdist's workers and every subprocess too
        tempfile.tempdir = None  # gettempdir() looks again


_temporary_files_in_memory()


class ShutdownStepHung(UserWarning):
    """An in-process app's shutdown step that did not stop in time (``telemetra.app``)."""


class _ShutdownHangs(logging.Handler):
    """Such a step's log line (the step, and where every task waited) becomes a warning of
    the test that shut the app down, so the run's summary names it instead of a teardown
    that was only slow."""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("shutting down:") and "did not stop in" in message:
            warnings.warn(message, ShutdownStepHung, stacklevel=1)


logging.getLogger("telemetra").addHandler(_ShutdownHangs(logging.ERROR))

BACKENDS = ["sqlite", "postgresql"]
ADMIN_USERNAME = "root"
ADMIN_PASSWORD = "root-password-for-tests"
_counter = itertools.count()
# The suite posts logins, API calls and readings in bursts far above the default rate limits:
# its apps and servers run without them; tests/limits sets its own, low ones.
SUITE_RATE_LIMITS = {"rate_limit_ingest": "off", "rate_limit_api": "off",
                     "rate_limit_login": "off"}


def _migrate(url: str) -> None:
    async def run() -> None:
        engine = create_engine(url)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    configured = os.environ.get("TELEMETRA_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    with pgcluster.throwaway_postgres() as url:
        yield url


@pytest.fixture(scope="session")
def pg_template(pg_admin_url: str) -> Iterator[str]:
    name = f"telemetra_tmpl_{uuid.uuid4().hex[:8]}"
    url = pgcluster.create_database(pg_admin_url, name)
    _migrate(url)
    yield name
    pgcluster.drop_database(pg_admin_url, name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    _migrate(f"sqlite:///{path}")
    return path


class DatabaseFactory:
    """Fresh, migrated databases of one backend."""

    def __init__(self, request: pytest.FixtureRequest, backend: str, tmp_dir: Path) -> None:
        self.request, self.backend, self.tmp_dir = request, backend, tmp_dir
        self._pg_names: list[str] = []

    def new(self) -> str:
        if self.backend == "sqlite":
            path = self.tmp_dir / f"t{next(_counter)}.db"
            shutil.copy(self.request.getfixturevalue("sqlite_template"), path)
            return f"sqlite:///{path}"
        admin_url = self.request.getfixturevalue("pg_admin_url")
        template = self.request.getfixturevalue("pg_template")
        name = f"telemetra_t{next(_counter)}_{uuid.uuid4().hex[:6]}"
        self._pg_names.append(name)
        return pgcluster.create_database(admin_url, name, template=template)

    def cleanup(self) -> None:
        if self._pg_names:
            admin_url = self.request.getfixturevalue("pg_admin_url")
            for name in self._pg_names:
                pgcluster.drop_database(admin_url, name)


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def databases(request, backend, tmp_path_factory) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(request, backend, tmp_path_factory.mktemp(backend))
    yield factory
    factory.cleanup()


def make_settings(database_url: str, **overrides) -> Settings:
    values = dict(env="test", database_url=database_url,
                  secret_key="test-secret-key-that-is-long-enough-0123456789",
                  admin_username=ADMIN_USERNAME, admin_password=ADMIN_PASSWORD,
                  signup_mode="single", log_level="WARNING", **SUITE_RATE_LIMITS)
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
def database_url(databases: DatabaseFactory) -> str:
    return databases.new()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def api(client: TestClient) -> Api:
    return Api(client)


@pytest.fixture
def root(api: Api) -> dict:
    """Headers of the configured superadmin (owner of the default organization)."""
    return api.login(ADMIN_USERNAME, ADMIN_PASSWORD)


@pytest.fixture(scope="module")
def tenants(databases: DatabaseFactory) -> Iterator[Tenants]:
    """One tenant-mode app per module and backend, with two organizations (``Tenants``)."""
    settings = make_settings(databases.new(), signup_mode="tenant")
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield Tenants(Api(test_client))
