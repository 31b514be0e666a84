"""Throwaway PostgreSQL clusters for the test suite.

No pytest import here, so this can be used from conftest.py, from scripts, and
run directly as a self-check::

    python tests/pgcluster.py

``throwaway_postgres()`` runs ``initdb`` into a fresh temp dir, starts the
server on a free port on 127.0.0.1 (never the machine's own 5432 instance) and
yields an admin URL; on exit the server is stopped and the dir removed.

``create_database()`` / ``drop_database()`` are synchronous helpers built on
asyncpg. They run their coroutine on a fresh event loop in a helper thread, so
they are safe to call from a thread that already runs an event loop.

PostgreSQL refuses to run as root. When we are root, every PostgreSQL
program is started as the ``postgres`` system user (through subprocess's
``user=``/``group=`` arguments), and the temp dir is chowned to that user.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

__all__ = [
    "PostgresNotFound",
    "create_database",
    "drop_database",
    "find_pg_bin",
    "throwaway_postgres",
]

T = TypeVar("T")

PG_USER = "postgres"  # superuser name inside the cluster (initdb -U)
OS_USER_WHEN_ROOT = "postgres"  # system account that runs the server when we are root


class PostgresNotFound(RuntimeError):
    """No PostgreSQL server binaries (initdb/pg_ctl) were found."""


# --------------------------------------------------------------------------- #
# Locating the binaries
# --------------------------------------------------------------------------- #


def _version_key(path: str) -> tuple[int, ...]:
    # /usr/lib/postgresql/15/bin/initdb -> (15,)
    version = Path(path).parent.parent.name
    return tuple(int(p) for p in re.findall(r"\d+", version)) or (0,)


def find_pg_bin() -> Path:
    """The directory holding initdb, pg_ctl and postgres.

    Order: ``$TELEMETRA_PG_BIN``; the newest ``/usr/lib/postgresql/*/bin``
    (Debian/Ubuntu layout); ``/usr/pgsql-*/bin`` (PGDG RPM layout); ``initdb``
    on PATH. The versioned dirs are preferred over PATH because e.g.
    /usr/local/bin/pg_ctl may be a wrapper script or symlink.
    """
    env = os.environ.get("TELEMETRA_PG_BIN")
    if env:
        path = Path(env)
        if not (path / "initdb").is_file():
            raise PostgresNotFound(f"TELEMETRA_PG_BIN={env!r} does not contain initdb")
        return path

    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb") + glob.glob(
        "/usr/pgsql-*/bin/initdb"
    )
    candidates = [c for c in candidates if os.access(c, os.X_OK)]
    if candidates:
        return Path(max(candidates, key=_version_key)).parent

    on_path = shutil.which("initdb")
    if on_path:
        return Path(os.path.realpath(on_path)).parent

    raise PostgresNotFound(
        "PostgreSQL server binaries not found. Install them (Debian: "
        "`apt-get install -y postgresql-15`, or `make system-deps`) or set "
        "TELEMETRA_PG_BIN to the directory containing initdb and pg_ctl."
    )


# --------------------------------------------------------------------------- #
# Running the server programs (as the postgres user when we are root)
# --------------------------------------------------------------------------- #


def _run_as() -> dict[str, Any]:
    """subprocess kwargs that drop root privileges; empty when not root."""
    if os.geteuid() != 0:
        return {}
    import pwd

    try:
        pw = pwd.getpwnam(OS_USER_WHEN_ROOT)
    except KeyError:
        raise PostgresNotFound(
            "running as root, but there is no 'postgres' system user to run "
            "PostgreSQL as (it is created by the postgresql Debian package)"
        ) from None
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def _clean_env() -> dict[str, str]:
    # PGDATA/PGPORT/PGHOST etc. from the caller must not leak into the cluster.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    env["LANG"] = "C"
    return env


def _pg(
    bin_dir: Path, tool: str, *args: str, cwd: Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / tool), *args],
        cwd=cwd,  # postgres programs dislike a cwd they cannot read (e.g. /root)
        env=_clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=check,
        **_run_as(),
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _kill_postmaster(data: Path) -> None:
    """Last resort if pg_ctl stop failed: SIGKILL the postmaster by pid file."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGKILL)


class Cluster:
    """A private PostgreSQL cluster in a temporary directory, which can be stopped (as if the
    database went away) and started again on the same port."""

    def __init__(self, *, max_connections: int = 200, durable: bool = False,
                 shared_buffers: str = "32MB") -> None:
        self.durable = durable  # keep fsync and synchronous commit (crash tests need them)
        self.shared_buffers = shared_buffers
        self.bin_dir = find_pg_bin()
        self.run_as = _run_as()
        self.base = Path(tempfile.mkdtemp(prefix="telemetra-pg-"))
        self.data, self.sock = self.base / "data", self.base / "sock"
        self.log = self.base / "postgres.log"
        self.max_connections = max_connections
        self.port: int | None = None
        self.running = False

    @property
    def url(self) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/postgres"

    def init(self) -> None:
        self.sock.mkdir()
        if self.run_as:
            os.chmod(self.base, 0o700)
            for p in (self.base, self.sock):
                os.chown(p, self.run_as["user"], self.run_as["group"])
        res = _pg(
            self.bin_dir, "initdb",
            "-D", str(self.data),
            "-U", PG_USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
            cwd=self.base, check=False,
        )  # fmt: skip
        if res.returncode != 0:
            raise RuntimeError(f"initdb failed (exit {res.returncode}):\n{res.stdout}")

    def _start_on(self, port: int) -> subprocess.CompletedProcess[str]:
        opts = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-c port={port}",
                f"-c unix_socket_directories={shlex.quote(str(self.sock))}",
                f"-c max_connections={self.max_connections}",
                f"-c shared_buffers={self.shared_buffers}",
                "-c log_min_messages=warning",
            ]
            + ([] if self.durable else ["-c fsync=off", "-c synchronous_commit=off",
                                        "-c full_page_writes=off"])
        )
        return _pg(
            self.bin_dir, "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", opts,
            "-w", "-t", "60", "start",
            cwd=self.base, check=False,
        )  # fmt: skip

    def start(self, attempts: int = 3) -> None:
        """Start on a free port the first time, on the same port afterwards."""
        last_error = ""
        for _ in range(attempts if self.port is None else 1):
            port = self.port or _free_port()
            res = self._start_on(port)
            if res.returncode == 0:
                self.port, self.running = port, True
                return
            # Most likely the port was grabbed between _free_port() and bind: retry.
            last_error = f"{res.stdout}\n--- server log ---\n{_tail(self.log)}"
            _kill_postmaster(self.data)
        raise RuntimeError(f"pg_ctl start failed:\n{last_error}")

    def stop(self, mode: str = "immediate") -> None:
        res = _pg(
            self.bin_dir, "pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop",
            cwd=self.base, check=False,
        )  # fmt: skip
        if res.returncode != 0:
            _kill_postmaster(self.data)
        self.running = False

    def remove(self) -> None:
        if self.running:
            self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


@contextlib.contextmanager
def throwaway_cluster(*, max_connections: int = 200, durable: bool = False,
                      shared_buffers: str = "32MB") -> Iterator[Cluster]:
    """A started private cluster, removed afterwards whatever happens."""
    cluster = Cluster(max_connections=max_connections, durable=durable,
                      shared_buffers=shared_buffers)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@contextlib.contextmanager
def throwaway_postgres(*, max_connections: int = 200) -> Iterator[str]:
    """Start a private PostgreSQL cluster; yield ``postgresql://postgres@127.0.0.1:PORT/postgres``.

    Durability is switched off (fsync, full_page_writes, synchronous_commit):
    the cluster only lives for the test run.
    """
    with throwaway_cluster(max_connections=max_connections) as cluster:
        yield cluster.url


# --------------------------------------------------------------------------- #
# Databases inside a cluster
# --------------------------------------------------------------------------- #


def _run_in_thread(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a fresh loop in a helper thread.

    Works whether or not the calling thread already runs an event loop.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(factory())
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    t = threading.Thread(target=target, name="pgcluster-helper", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def database_url(admin_url: str, name: str) -> str:
    """``admin_url`` with its database path replaced by ``name``."""
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path="/" + quote(name, safe="")))


def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    """CREATE DATABASE ``name`` (optionally from ``template``); return its URL.

    If the template still has a lingering connection (e.g. a pool that is
    closing), the copy is retried for a couple of seconds.
    """
    import asyncpg

    sql = f"CREATE DATABASE {_ident(name)}"
    if template is not None:
        sql += f" TEMPLATE {_ident(template)}"

    async def go() -> None:
        conn = await asyncpg.connect(admin_url, timeout=10)
        try:
            deadline = time.monotonic() + 3.0
            while True:
                try:
                    await conn.execute(sql)
                    return
                except asyncpg.exceptions.ObjectInUseError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.05)
        finally:
            await conn.close()

    _run_in_thread(go)
    return database_url(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    """DROP DATABASE IF EXISTS ``name``, terminating any remaining connections."""
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(admin_url, timeout=10)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")
        finally:
            await conn.close()

    _run_in_thread(go)


# --------------------------------------------------------------------------- #
# Self-check: python tests/pgcluster.py
# --------------------------------------------------------------------------- #


def _self_check() -> None:
    import asyncpg

    t0 = time.perf_counter()
    print(f"pg bin dir: {find_pg_bin()}")
    with throwaway_postgres() as admin_url:
        t1 = time.perf_counter()
        print(f"cluster up in {t1 - t0:.2f}s: {admin_url}")

        url = create_database(admin_url, "selfcheck")

        async def probe(u: str) -> tuple[str, str]:
            conn = await asyncpg.connect(u)
            try:
                await conn.execute("CREATE TABLE IF NOT EXISTS t (x int)")
                return await conn.fetchval("select version()"), await conn.fetchval(
                    "select current_database()"
                )
            finally:
                await conn.close()

        version, db = _run_in_thread(lambda: probe(url))
        print(f"{db}: {version}")

        t2 = time.perf_counter()
        copy_url = create_database(admin_url, "selfcheck_copy", template="selfcheck")
        _, db = _run_in_thread(lambda: probe(copy_url))
        drop_database(admin_url, "selfcheck_copy")
        t3 = time.perf_counter()
        print(f"create-from-template + connect + drop of {db!r}: {(t3 - t2) * 1000:.0f} ms")

        drop_database(admin_url, "selfcheck")
    print(f"stopped and cleaned up; total {time.perf_counter() - t0:.2f}s")


if __name__ == "__main__":
    _self_check()
