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


_TIMES = "ISO 8601 (2026-01-31T12:00:00Z) or epoch seconds or milliseconds"


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(raw_value) -> float:
    """A reading's value: a number, or true/false; a ValueError naming the column and what
    to write instead (never Python's own "could not convert string to float")."""
    if isinstance(raw_value, bool):
        return 1.0 if raw_value else 0.0
    if isinstance(raw_value, (int, float)):
        value = float(raw_value)
    elif isinstance(raw_value, str) and raw_value.strip():
        text = raw_value.strip()
        if text.lower() in ("true", "false"):
            return 1.0 if text.lower() == "true" else 0.0
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"value: {_shown(raw_value)} is not a number; write a decimal "
                             "number such as 21.5 (or true/false)") from None
    elif raw_value is None or isinstance(raw_value, str):
        raise ValueError("value: missing; every reading needs a number in the value column")
    else:
        raise ValueError(f"value: {_shown(raw_value)} is not a number; write a decimal number "
                         "such as 21.5 (or true/false)")
    if not math.isfinite(value):
        raise ValueError(f"value: {_shown(raw_value)} is not a finite number")
    return value


def _parse_record(record: dict, default_device: int | None) -> tuple[int, Reading]:
    """One line's reading; a ValueError names the column, what is wrong and the fix."""
    device = record.get("device_id")
    if device is None or device == "":
        if default_device is None:
            raise ValueError("device_id: missing; fill it in, or give the device for rows "
                             "without one (device_id in the query, --device-id on the command "
                             "line)")
        device = default_device
    if isinstance(device, float) and device.is_integer():
        device = int(device)
    if isinstance(device, bool) or not isinstance(device, (int, str)):
        raise ValueError(f"device_id: {_shown(device)} is not a device id (a whole number)")
    try:
        device_id = int(device)
    except ValueError:
        raise ValueError(f"device_id: {_shown(device)} is not a device id (a whole "
                         "number)") from None
    key = record.get("key")
    if key is None or key == "":
        raise ValueError("key: missing; name the sensor, e.g. temperature")
    if not isinstance(key, str) or len(key) > 100:
        raise ValueError("key: must be a text of at most 100 characters")
    value = _number(record.get("value"))
    raw_ts = record.get("ts")
    if raw_ts is None or raw_ts == "":
        raise ValueError(f"ts: missing; give the reading's time, {_TIMES}")
    try:
        ts = parse_timestamp(raw_ts)
    except (ValueError, OverflowError, OSError, TypeError):
        raise ValueError(f"ts: {_shown(raw_ts)} is not a time; use {_TIMES}") from None
    tags = record.get("tags")
    if isinstance(tags, str):
        tags = [t for t in tags.split("|") if t] or None
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        raise ValueError("tags: must be a list of texts (in CSV: separated by |, e.g. a|b)")
    return device_id, Reading(key, value, ts, None, tags or None)


def _check_header(header: list[str], default_device: int | None) -> None:
    """The CSV header (line 1) must name key, ts and value, and device_id unless the device
    is given for rows without one: a 422 naming what is missing and how to fix it."""
    needed = ["key", "ts", "value"] + (["device_id"] if default_device is None else [])
    missing = [name for name in needed if name not in header]
    if not missing:
        return
    found = ", ".join(name for name in header if name) or "nothing"
    fix = ("add the column(s), or give the device for rows without one (device_id in the "
           "query, --device-id on the command line)" if missing == ["device_id"]
           else "add the column(s)")
    raise Invalid(f"line 1 (the CSV header): no {', '.join(missing)} column; it has {found}. "
                  f"The header must be e.g. device_id,key,ts,value: {fix}", loc=["body", 1])


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
                    _check_header(header, default_device)
                    continue
                if len(values) > len(header):
                    raise ValueError(f"{len(values)} fields but the header names "
                                     f"{len(header)} columns; quote a value holding a comma")
                record = dict(zip(header, values))
            else:
                record = orjson.loads(line)
                if not isinstance(record, dict):
                    raise ValueError('not a JSON object; each line is one reading, e.g. '
                                     '{"device_id": 1, "key": "temperature", '
                                     '"ts": "2026-01-31T12:00:00Z", "value": 21.5}')
            device_id, reading = _parse_record(record, default_device)
        except orjson.JSONDecodeError as exc:
            report.reject(line_number, f"not JSON ({exc}); each line is one JSON object")
            continue
        except (ValueError, csv.Error) as exc:
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
