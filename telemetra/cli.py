"""The ``telemetra`` command: serve, migrate, create-admin, import, export, demo, simulate,
version."""

import asyncio
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from telemetra import __version__
from telemetra.client.simulate import simulate_command
from telemetra.demo.cli import demo_command
from telemetra.kit.cli import load_settings as _settings
from telemetra.readings.cli import export_command, import_command

app = typer.Typer(help="Telemetra: IoT device and telemetry platform.", no_args_is_help=True,
                  add_completion=False)


def _configure_logging(settings) -> None:
    """Log to stderr with credentials redacted (telemetra.kit.logging), in the settings'
    format."""
    from telemetra.kit.logging import configure

    configure(settings.log_level, settings.log_format)


@contextmanager
def _metrics_directory(workers: int | None):
    """Several workers keep their metrics in files (prometheus-client's multiprocess mode,
    telemetra.system.metrics): in PROMETHEUS_MULTIPROC_DIR if set (emptied first, as a new
    run's counters start at zero), else in a directory of this run's, removed at the end.
    The workers, started after this, inherit the variable."""
    from telemetra.system.metrics import MULTIPROC_ENV

    if not workers or workers < 2:
        yield
        return
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        for old in Path(given).glob("*.db"):
            old.unlink()
        yield
        return
    directory = tempfile.mkdtemp(prefix="telemetra-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(directory, ignore_errors=True)


async def _migrate(database_url: str) -> None:
    from telemetra.db.engine import create_engine
    from telemetra.db.migrate import upgrade

    engine = create_engine(database_url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (also done at every `serve` start)."""
    settings = _settings()
    _configure_logging(settings)
    asyncio.run(_migrate(settings.database_url))
    typer.echo("database is up to date")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Default: TELEMETRA_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="Default: TELEMETRA_PORT")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Worker processes. Default: "
                                                "TELEMETRA_WORKERS")] = None,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development)")] = False,
) -> None:
    """Run the HTTP API (migrating first)."""
    import uvicorn

    settings = _settings()
    _configure_logging(settings)
    # Migrate once here, so that N workers do not all race to do it.
    asyncio.run(_migrate(settings.database_url))
    workers = None if reload else workers or settings.workers
    from telemetra.kit.logging import uvicorn_config

    with _metrics_directory(workers):
        uvicorn.run("telemetra.app:create_app", factory=True, host=host or settings.host,
                    port=port or settings.port, workers=workers, reload=reload,
                    log_level=settings.log_level.lower(),
                    # X-Forwarded-For/-Proto believed only from TELEMETRA_TRUSTED_PROXIES
                    # (uvicorn would trust 127.0.0.1 by default: a client's own header).
                    proxy_headers=bool(settings.trusted_proxies),
                    forwarded_allow_ips=",".join(settings.trusted_proxies) or None,
                    # Idle and slow connections are closed (see telemetra.system.connections).
                    http="telemetra.system.connections:HeadTimeoutProtocol",
                    timeout_keep_alive=settings.http_keep_alive_seconds,
                    # Live sockets send one body to many clients: compressed once for all of
                    # them (telemetra.live.deflate), not by uvicorn once a socket.
                    ws="telemetra.live.deflate:SharedDeflateProtocol",
                    ws_per_message_deflate=False,
                    log_config=uvicorn_config(settings.log_level, settings.log_format))


@app.command("create-admin")
def create_admin(
    username: Annotated[str, typer.Option(prompt=True)],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True,
                                          confirmation_prompt=True)],
    email: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Create a superadmin in the default organization."""
    settings = _settings()
    _configure_logging(settings)

    async def run() -> None:
        from telemetra.auth.roles import Role
        from telemetra.auth.service import insert_user
        from telemetra.db.engine import create_engine
        from telemetra.db.migrate import upgrade
        from telemetra.orgs.service import ensure_organization

        engine = create_engine(settings.database_url)
        try:
            await upgrade(engine)
            async with engine.begin() as conn:
                organization_id = await ensure_organization(conn, settings.default_organization)
                await insert_user(conn, organization_id=organization_id, username=username,
                                  password=password, email=email, role=Role.owner,
                                  is_superadmin=True)
        finally:
            await engine.dispose()

    from telemetra.kit.errors import TelemetraError

    if len(password) < 8:
        typer.echo("the password must have at least 8 characters", err=True)
        raise typer.Exit(2)
    try:
        asyncio.run(run())
    except TelemetraError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"superadmin {username!r} created")


app.command("import")(import_command)
app.command("export")(export_command)
app.command("demo")(demo_command)
app.command("simulate")(simulate_command)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)
