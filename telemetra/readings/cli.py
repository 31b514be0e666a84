"""``telemetra import`` and ``telemetra export``: bulk readings from the command line.

They talk to the database directly (like ``migrate``), through the same decoding and
group-commit writer as the HTTP API, and show a progress bar.
"""

import asyncio
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from telemetra.kit.cli import load_settings as _settings
from telemetra.kit.errors import TelemetraError


async def _import(path: Path, fmt: str, device_id: int | None, progress: Progress) -> dict:
    from telemetra.db.engine import create_engine
    from telemetra.db.migrate import ensure_migrated
    from telemetra.ingest.ingest import Ingestor
    from telemetra.ingest.partitions import Partitions
    from telemetra.ingest.writer import Writer
    from telemetra.readings.transfer import import_stream

    settings = _settings()
    engine = create_engine(settings.database_url)
    try:
        await ensure_migrated(engine, settings.database_url)
    except TelemetraError:
        await engine.dispose()
        raise
    writer = Writer(engine, Partitions(engine))
    await writer.start()
    task = progress.add_task(f"importing {path.name}", total=path.stat().st_size)

    async def chunks():
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                progress.advance(task, len(chunk))
                yield chunk

    try:
        report = await import_stream(Ingestor.from_settings(engine, writer, settings), None,
                                     chunks(), fmt, device_id)
    finally:
        await writer.stop()
        await engine.dispose()
    return report.as_dict()


def import_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    device_id: Annotated[int | None, typer.Option(help="Device of rows that name none")] = None,
    format: Annotated[str | None, typer.Option(help="csv or ndjson (default: by suffix)")] = None,
) -> None:
    """Import historical readings from a CSV (device_id,key,ts,value) or NDJSON file."""
    fmt = format or ("ndjson" if file.suffix.lower() in (".ndjson", ".jsonl", ".json") else "csv")
    if fmt not in ("csv", "ndjson"):
        raise typer.BadParameter("csv or ndjson", param_hint="--format")
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeElapsedColumn(), transient=False) as progress:
        try:
            report = asyncio.run(_import(file, fmt, device_id, progress))
        except TelemetraError as exc:
            typer.echo(f"error: {exc.detail}", err=True)
            raise typer.Exit(1) from None
    typer.echo(f"accepted {report['accepted']}, duplicates {report['duplicates']}, "
               f"rejected {report['rejected_total']}")
    for rejection in report["rejected"][:20]:
        typer.echo(f"  line {rejection['index']}: {rejection['reason']}", err=True)
    if report["rejected_total"]:
        raise typer.Exit(1)


async def _export(output: Path | None, fmt: str, where, progress: Progress) -> int:
    """Write the readings to ``output`` (stdout if None), opened only once the database is
    known to be there: a missing one leaves no empty file behind, nor an empty database."""
    from telemetra.db.engine import create_engine
    from telemetra.db.migrate import ensure_migrated
    from telemetra.readings.transfer import export_lines

    database_url = _settings().database_url
    engine = create_engine(database_url)
    lines = 0
    try:
        await ensure_migrated(engine, database_url)
        with (output.open("wb") if output is not None else nullcontext(sys.stdout.buffer)
              ) as out:
            task = progress.add_task("exporting", total=None)
            async for chunk in export_lines(engine, where, fmt):
                out.write(chunk)
                count = chunk.count(b"\n")
                lines += count
                progress.advance(task, count)
    finally:
        await engine.dispose()
    return lines


def export_command(
    output: Annotated[Path | None, typer.Option("--output", "-o",
                                                help="File to write (default: stdout)")] = None,
    format: Annotated[str, typer.Option(help="csv or ndjson")] = "csv",
    organization_id: Annotated[int, typer.Option(help="Whose readings")] = 1,
    device_id: int | None = None,
    sensor_id: int | None = None,
    site_id: int | None = None,
    keys: Annotated[str | None, typer.Option(help="Comma-separated keys")] = None,
    start: Annotated[str | None, typer.Option(help="ISO 8601, epoch, or -7d etc.")] = None,
    end: str | None = None,
    include_invalid: bool = True,
) -> None:
    """Export readings as CSV or NDJSON, oldest first."""
    from telemetra.kit.timeparse import parse_query_time
    from telemetra.readings.query import ReadingFilter

    if format not in ("csv", "ndjson"):
        raise typer.BadParameter("csv or ndjson", param_hint="--format")
    try:
        where = ReadingFilter(
            organization_id=organization_id, device_id=device_id, sensor_id=sensor_id,
            site_id=site_id, keys=[k for k in (keys or "").split(",") if k],
            start=parse_query_time(start, name="start") if start else None,
            end=parse_query_time(end, name="end") if end else None,
            include_invalid=include_invalid)
        where.check_range()
    except TelemetraError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    with Progress(SpinnerColumn(), TextColumn("{task.description} {task.completed} lines"),
                  TimeElapsedColumn(), console=None, transient=False,
                  disable=output is None) as progress:
        try:
            lines = asyncio.run(_export(output, format, where, progress))
        except TelemetraError as exc:
            typer.echo(f"error: {exc.detail}", err=True)
            raise typer.Exit(1) from None
    if output is not None:
        typer.echo(f"wrote {lines} lines to {output}")
