"""``telemetra demo``: a realistic month in an organization, for a first look around.

Wired like ``telemetra import``: it talks to the database directly, through the same
ingestion path and group-commit writer as the API, with this process's event bus, the relay
(so a server running on the same database hears of the new devices, sensors and rules at
once) and the alert evaluator (so the month's incidents open alerts, as they would have).
Its readings are not broadcast to live sockets: a month at once is history, not live data.
"""

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from telemetra.kit.cli import load_settings as _settings
from telemetra.kit.errors import TelemetraError


async def run_demo(settings, organization: str | None, days: int, end: datetime,
                   progress: Progress | None = None) -> tuple[dict, dict]:
    """Fill the organization (default: the default organization, where the configured
    superadmin is); returns the summary and what was found or made."""
    from telemetra.alerts.evaluation import Evaluator
    from telemetra.auth.service import seed
    from telemetra.db.engine import create_engine
    from telemetra.db.migrate import upgrade
    from telemetra.db.relay import relay_for
    from telemetra.demo.plan import DemoPlan
    from telemetra.demo.service import finish, load_readings, set_up, summary
    from telemetra.ingest.ingest import Ingestor
    from telemetra.ingest.partitions import Partitions
    from telemetra.ingest.writer import Writer
    from telemetra.kit.crypto import SecretBox
    from telemetra.kit.events import EventBus
    from telemetra.orgs.plans import Plans, register

    plan = DemoPlan(organization or settings.default_organization, end, days)
    engine = create_engine(settings.database_url)
    register(engine, Plans.from_settings(settings))
    bus = EventBus()
    relay = writer = ingestor = None
    task = progress.add_task("setting up", total=None) if progress else None

    def advance(steps: int) -> None:
        if progress is not None:
            progress.advance(task, steps)

    try:
        await upgrade(engine)
        await seed(engine, settings)  # as `serve` does: the default organization, the admin
        relay = relay_for(engine, bus)
        if relay is not None:
            await relay.start()
        evaluator = Evaluator(engine, bus, timedelta(hours=settings.webhook_retry_hours))
        evaluator.subscribe()
        await bus.start()
        writer = Writer(engine, Partitions(engine), events=bus)
        await writer.start()
        ingestor = Ingestor.from_settings(engine, writer, settings, bus)
        made, user_id = await set_up(engine, bus, plan, SecretBox(settings.secret_key),
                                     settings.admin_username)
        if progress is not None:
            progress.update(task, description=f"{days} days of readings",
                            total=len(plan.days_covered()) * len(plan.devices))
        await load_readings(ingestor, plan, made, advance)
        if progress is not None:
            progress.update(task, description="reviewing, commands, dashboard")
        await finish(engine, bus, plan, made, user_id)
        if progress is not None:
            progress.update(task, description="done")
        await writer.stop()
        writer = None
        await bus.stop(timeout=120)  # the evaluator's last batches
        return await summary(engine, made), {"made": made, "plan": plan}
    finally:
        if writer is not None:
            await writer.stop()
        if ingestor is not None:
            await ingestor.close()
        await bus.stop()
        if relay is not None:
            await relay.stop()
        await engine.dispose()


def _parse_end(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    from telemetra.kit.timeparse import parse_query_time

    try:
        moment = parse_query_time(value, name="end")
    except TelemetraError as exc:
        raise typer.BadParameter(exc.detail, param_hint="--end") from None
    if moment > datetime.now(UTC):
        raise typer.BadParameter("must not be in the future", param_hint="--end")
    return moment


def demo_command(
    organization: Annotated[str | None, typer.Option(
        help="Organization to fill, created if missing (default: TELEMETRA_DEFAULT_ORGANIZATION,"
             " where the configured admin is)")] = None,
    days: Annotated[int, typer.Option(min=1, max=365, help="Days of history")] = 30,
    end: Annotated[str | None, typer.Option(
        help="Time of the last readings: ISO 8601, epoch seconds or -2d etc. (default: now); "
             "a fixed one makes the same data every time")] = None,
) -> None:
    """Fill an organization with a realistic month: four sites, devices, readings, alerts."""
    settings = _settings()
    moment = _parse_end(end)
    console = Console()
    started = time.monotonic()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as progress:
        try:
            figures, details = asyncio.run(run_demo(settings, organization, days, moment,
                                                    progress))
        except TelemetraError as exc:
            typer.echo(f"error: {exc.detail}", err=True)
            raise typer.Exit(1) from None
    _report(console, settings, figures, details, time.monotonic() - started)


def _report(console: Console, settings, figures: dict, details: dict, seconds: float) -> None:
    made, plan = details["made"], details["plan"]
    table = Table(title=f"Demo data in organization {plan.organization!r}", show_lines=False)
    for column in ("", "now", "made by this run"):
        table.add_column(column, justify="right" if column else "left")
    for kind in ("sites", "devices", "sensors", "alert_rules", "commands", "dashboards"):
        table.add_row(kind.replace("_", " "), str(figures[kind]),
                      str(made.created.get(kind, 0)))
    table.add_row("readings", f"{figures['readings']:,}", f"{made.accepted:,}")
    console.print(table)
    states = ", ".join(f"{n:,} {status}" for status, n in figures["by_status"].items())
    alerts = ", ".join(f"{n} {state}" for state, n in sorted(figures["alerts"].items())) or "none"
    console.print(f"readings {plan.first:%Y-%m-%d %H:%M} to {plan.last:%Y-%m-%d %H:%M} UTC, "
                  f"every 5 minutes: {states}; {figures['invalid']:,} invalid "
                  f"(glitches and 'suspect' tags)")
    if made.duplicates:
        console.print(f"{made.duplicates:,} readings were stored already (an earlier run)")
    console.print(f"alerts: {alerts}; dashboard {made.dashboard}")
    console.print(f"done in {seconds:.1f} s")
    base = f"http://{settings.host}:{settings.port}"
    if made.user is not None:
        from telemetra.settings import DEV_ADMIN_PASSWORD

        password = (f" (password {DEV_ADMIN_PASSWORD!r})"
                    if made.user == settings.admin_username
                    and settings.admin_password == DEV_ADMIN_PASSWORD else "")
        console.print(f"Log in at {base}/ as {made.user!r}{password}; the API is at {base}/docs")
    else:
        console.print(f"{plan.organization!r} has no owner or admin, so nobody of it can log "
                      f"in: a superadmin sees it under {base}/api/v1/admin (API at "
                      f"{base}/docs)")
