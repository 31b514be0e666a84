"""The ``telemetra`` command: serve, migrate, create-admin, version."""

import asyncio
import logging
from typing import Annotated

import typer

from telemetra import __version__
from telemetra.kit.cli import load_settings as _settings
from telemetra.readings.cli import export_command, import_command

app = typer.Typer(help="Telemetra: IoT device and telemetry platform.", no_args_is_help=True,
                  add_completion=False)


_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_REDACT = {"()": "telemetra.kit.redact.RedactCredentials"}


def _configure_logging(level: str) -> None:
    """Log to stderr with credentials redacted (telemetra.kit.redact) from every record."""
    from telemetra.kit.redact import RedactCredentials

    logging.basicConfig(level=level.upper(), format=_LOG_FORMAT)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactCredentials) for f in handler.filters):
            handler.addFilter(RedactCredentials())


def _uvicorn_log_config(level: str) -> dict:
    """uvicorn's own logging, with the redacting filter on its access and error handlers, and
    the root logger's (Telemetra's) handler too: uvicorn applies this in every worker process,
    where ``_configure_logging`` never ran."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact_credentials": _REDACT}
    config["formatters"]["telemetra"] = {"format": _LOG_FORMAT}
    config["handlers"]["telemetra"] = {"class": "logging.StreamHandler",
                                       "stream": "ext://sys.stderr", "formatter": "telemetra"}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact_credentials"]
    config["root"] = {"handlers": ["telemetra"], "level": level.upper()}
    return config


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
    _configure_logging(settings.log_level)
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
    _configure_logging(settings.log_level)
    # Migrate once here, so that N workers do not all race to do it.
    asyncio.run(_migrate(settings.database_url))
    workers = None if reload else workers or settings.workers
    uvicorn.run("telemetra.app:create_app", factory=True, host=host or settings.host,
                port=port or settings.port, workers=workers, reload=reload,
                log_level=settings.log_level.lower(),
                # X-Forwarded-For/-Proto believed only from TELEMETRA_TRUSTED_PROXIES (uvicorn
                # would trust 127.0.0.1 by default: a client's own header, on one host).
                proxy_headers=bool(settings.trusted_proxies),
                forwarded_allow_ips=",".join(settings.trusted_proxies) or None,
                # Idle and slow connections are closed (see telemetra.system.connections).
                http="telemetra.system.connections:HeadTimeoutProtocol",
                timeout_keep_alive=settings.http_keep_alive_seconds,
                # Live sockets send one body to many clients: compressed, each socket's copy
                # cost its own deflate (a third of the sends' time with 200 sockets).
                ws_per_message_deflate=False,
                log_config=_uvicorn_log_config(settings.log_level))


@app.command("create-admin")
def create_admin(
    username: Annotated[str, typer.Option(prompt=True)],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True,
                                          confirmation_prompt=True)],
    email: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Create a superadmin in the default organization."""
    settings = _settings()
    _configure_logging(settings.log_level)

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


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)
