"""Export (CSV, NDJSON) and import of readings, streamed both ways.

Export reads through a server-side cursor and yields lines, so a long range never sits in
memory. Import reads lines from any byte stream, decodes them and hands batches to the
group-commit writer, answering like ingestion.
"""

import csv
import io
import math
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from telemetra.db.tables import readings
from telemetra.ingest.decode import Reading
from telemetra.ingest.ingest import IMPORT, Ingestor, Target, find_target
from telemetra.kit.errors import Invalid
from telemetra.kit.timeparse import parse_timestamp
from telemetra.readings.query import ReadingFilter, reading_out
from telemetra.system.metrics import INGESTED

EXPORT_COLUMNS = ["device_id", "sensor_id", "key", "ts", "value", "unit", "valid", "status",
                  "tags"]
IMPORT_BATCH = 5_000
# A reading is a line of ~100 bytes; longer is not an import (and csv refuses fields over
# 128 KiB with an error of its own).
MAX_LINE_BYTES = 65_536
MAX_REPORTED_REJECTIONS = 1_000


def _ts(value) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _csv_line(values: list) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


async def export_lines(engine: AsyncEngine, where: ReadingFilter,
                       fmt: str) -> AsyncIterator[bytes]:
    """Yield the selected readings, oldest first, as CSV (with a header) or NDJSON lines.

    The query runs before the first chunk is yielded, so a caller that takes the first chunk
    before answering still turns a database error into a problem response."""
    query = where.select_readings().order_by(readings.c.ts, readings.c.sensor_id)
    async with engine.connect() as conn:
        result = await conn.stream(query.execution_options(yield_per=2_000), where.params)
        yield _csv_line(EXPORT_COLUMNS).encode() if fmt == "csv" else b""
        async for partition in result.mappings().partitions():
            chunk = []
            for row in partition:
                out = reading_out(row)
                if fmt == "csv":
                    chunk.append(_csv_line([
                        out["device_id"], out["sensor_id"], out["key"], _ts(out["ts"]),
                        repr(out["value"]), out["unit"] or "", str(out["valid"]).lower(),
                        out["status"].value, "|".join(out["tags"] or [])]))
                else:
                    out["ts"] = _ts(out["ts"])
                    chunk.append(orjson.dumps(out).decode() + "\n")
            yield "".join(chunk).encode()


@dataclass
class ImportReport:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict] = field(default_factory=list)
    rejected_total: int = 0

    def reject(self, line: int, reason: str) -> None:
        self.rejected_total += 1
        if len(self.rejected) < MAX_REPORTED_REJECTIONS:
            self.rejected.append({"index": line, "reason": reason})

    def as_dict(self) -> dict:
        return {"accepted": self.accepted, "duplicates": self.duplicates,
                "rejected": self.rejected, "rejected_total": self.rejected_total}


def _too_long(line_number: int) -> Invalid:
    return Invalid(f"line {line_number} is longer than {MAX_LINE_BYTES} bytes (the lines "
                   "before it were imported)", loc=["body", line_number])


async def _lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """The lines of the stream; one longer than MAX_LINE_BYTES is a 422 as soon as it is
    seen (the stream is never held whole, nor is a line without an end)."""
    pending, line_number = b"", 0
    async for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            line_number += 1
            if len(line) > MAX_LINE_BYTES:
                raise _too_long(line_number)
            yield line.decode("utf-8", errors="replace").rstrip("\r")
        if len(pending) > MAX_LINE_BYTES:
            raise _too_long(line_number + 1)
    if pending.strip():
        yield pending.decode("utf-8", errors="replace").rstrip("\r")


def _parse_record(record: dict, default_device: int | None) -> tuple[int, Reading]:
    device = record.get("device_id") or default_device
    try:
        device_id = int(device)
    except (TypeError, ValueError):
        raise ValueError("device_id missing or not a number") from None
    key = record.get("key")
    if not isinstance(key, str) or not key or len(key) > 100:
        raise ValueError("key missing or invalid")
    raw_value = record.get("value")
    if isinstance(raw_value, str):
        if raw_value.strip().lower() in ("true", "false"):
            value = 1.0 if raw_value.strip().lower() == "true" else 0.0
        else:
            value = float(raw_value)
    elif isinstance(raw_value, bool):
        value = 1.0 if raw_value else 0.0
    elif isinstance(raw_value, (int, float)):
        value = float(raw_value)
    else:
        raise ValueError("value missing or not a number")
    if not math.isfinite(value):
        raise ValueError("non-finite value")
    try:
        ts = parse_timestamp(record.get("ts"))
    except (ValueError, OverflowError, OSError, TypeError):
        raise ValueError("ts missing or not a time") from None
    tags = record.get("tags")
    if isinstance(tags, str):
        tags = [t for t in tags.split("|") if t] or None
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        raise ValueError("tags must be a list of strings")
    return device_id, Reading(key, value, ts, None, tags or None)


async def import_stream(ingestor: Ingestor, organization_id: int | None,
                        chunks: AsyncIterator[bytes], fmt: str,
                        default_device: int | None = None) -> ImportReport:
    """Read CSV (header with device_id, key, ts, value) or NDJSON and store it in batches.

    ``organization_id`` None (the command line) accepts devices of any organization."""
    report = ImportReport()
    targets: dict[int, Target | None] = {}
    batches: dict[int, list[Reading]] = {}
    lines: dict[int, list[int]] = {}  # the line of each reading of batches
    pending = 0
    header: list[str] | None = None

    async def flush() -> None:
        nonlocal pending
        for device_id, batch in batches.items():
            result = await ingestor.ingest(targets[device_id], batch, IMPORT)
            report.accepted += result["accepted"]
            INGESTED["import"].inc(result["accepted"])
            report.duplicates += result["duplicates"]
            for rejection in result["rejected"]:
                report.reject(lines[device_id][rejection["index"]], rejection["reason"])
        batches.clear()
        lines.clear()
        pending = 0

    line_number = 0
    async for line in _lines(chunks):
        line_number += 1
        if not line.strip():
            continue
        try:
            if fmt == "csv":
                values = next(csv.reader([line]))
                if header is None:
                    header = [name.strip() for name in values]
                    missing = {"key", "ts", "value"} - set(header)
                    if missing or ("device_id" not in header and default_device is None):
                        raise Invalid("the CSV header must name device_id (or pass device_id), "
                                      f"key, ts and value; missing {sorted(missing)}",
                                      loc=["body"])
                    continue
                record = dict(zip(header, values))
            else:
                record = orjson.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
            device_id, reading = _parse_record(record, default_device)
        except (ValueError, orjson.JSONDecodeError, csv.Error) as exc:
            report.reject(line_number, str(exc) or "invalid line")
            continue
        if device_id not in targets:
            targets[device_id] = await find_target(ingestor.engine, organization_id, device_id)
        if targets[device_id] is None:
            report.reject(line_number, f"no such device {device_id}")
            continue
        batches.setdefault(device_id, []).append(reading)
        lines.setdefault(device_id, []).append(line_number)
        pending += 1
        if pending >= IMPORT_BATCH:
            await flush()
    if fmt == "csv" and header is None:
        raise Invalid("the upload is empty", loc=["body"])
    await flush()
    return report



async def primed(chunks: AsyncIterator[bytes]) -> AsyncIterable[bytes]:
    """Run ``chunks`` up to its first chunk now, and stream the rest later."""
    first = await anext(chunks)

    async def stream() -> AsyncIterator[bytes]:
        if first:
            yield first
        async for chunk in chunks:
            yield chunk

    return stream()
