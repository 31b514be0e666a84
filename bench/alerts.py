"""Alert evaluation's cost per committed batch, in-process, on a SQLite file.

Prints microseconds per 1,000 rows for a batch of 50,000 rows of one device's sensor
(a) in an organization without rules, (b) with 100 rules on that key whose episodes do not
change (the steady state), and the ratio of each to building the batch's ReadingsCommitted
event (the writer's own cost for a subscriber, measured in the same run); then (c) the same
rows spread over the device's 10 keys, interleaved as bench/batch.lua sends them, 10 rules
on each, and (d) over 1,000 devices' sensors of one key under 10 organization-wide rules
(a fleet's batch).

    .venv/bin/python bench/alerts.py
"""

import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from telemetra.alerts.evaluation import Evaluator
from telemetra.db.engine import create_engine
from telemetra.db.migrate import upgrade
from telemetra.db.tables import alert_rules, devices, organizations, sensors
from telemetra.ingest.batches import Origin
from telemetra.ingest.events import committed
from telemetra.kit.events import EventBus

ROWS = 50_000
ROUNDS = 20
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rows(organization_id: int, sensors: int = 1, first: int = 1) -> list:
    """One request's rows of ``sensors`` sensors from ``first``, interleaved (values 0 to 19:
    below every rule's threshold)."""
    origin = Origin(1, organization_id)
    return [(first + i % sensors, T0 + timedelta(microseconds=i), float(i % 20), 0, None, None,
             origin) for i in range(ROWS)]


async def per_thousand(work) -> float:
    """The best of ROUNDS runs of ``work()`` (a coroutine function), in µs per 1,000 rows."""
    samples = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        await work()
        samples.append(time.perf_counter() - started)
    return min(samples) / ROWS * 1000 * 1e6


async def main() -> None:
    path = Path(tempfile.mkdtemp()) / "bench.db"
    engine = create_engine(f"sqlite:///{path}")
    await upgrade(engine)
    async with engine.begin() as conn:
        await conn.execute(insert(organizations), [
            {"id": 1, "name": "with rules", "invalid_tags": []},
            {"id": 2, "name": "without", "invalid_tags": []}])
        await conn.execute(insert(devices).values(id=1, organization_id=1, name="d",
                                                  api_key_prefix="p", api_key_hash="h"))
        await conn.execute(insert(sensors).values(id=1, organization_id=1, device_id=1,
                                                  key="temperature"))
        await conn.execute(insert(alert_rules), [
            {"organization_id": 1, "name": f"r{i}", "key": "temperature", "condition": "gt",
             "threshold": 100 + i, "device_id": 1} for i in range(100)])
        # (c) device 1's keys k0..k9 (sensors 11 to 20), 10 rules each
        await conn.execute(insert(sensors), [
            {"id": 11 + k, "organization_id": 1, "device_id": 1, "key": f"k{k}"}
            for k in range(10)])
        await conn.execute(insert(alert_rules), [
            {"organization_id": 1, "name": f"k{k} {i}", "key": f"k{k}", "condition": "gt",
             "threshold": 100 + i, "device_id": 1} for k in range(10) for i in range(10)])
        # (d) organization 3: 1,000 devices with a "load" sensor each, 10 rules on all
        await conn.execute(insert(organizations).values(id=3, name="fleet", invalid_tags=[]))
        await conn.execute(insert(devices), [
            {"id": 1000 + d, "organization_id": 3, "name": f"f{d}", "api_key_prefix": f"f{d}",
             "api_key_hash": "h"} for d in range(1000)])
        await conn.execute(insert(sensors), [
            {"id": 1000 + d, "organization_id": 3, "device_id": 1000 + d, "key": "load"}
            for d in range(1000)])
        await conn.execute(insert(alert_rules), [
            {"organization_id": 3, "name": f"load {i}", "key": "load", "condition": "lt",
             "threshold": -1 - i} for i in range(10)])
    evaluator = Evaluator(engine, EventBus(), timedelta(hours=1))
    with_rules, without = rows(1), rows(2)

    async def build():
        committed([with_rules])

    baseline = await per_thousand(build)
    print(f"baseline (the writer building ReadingsCommitted): {baseline:.1f} µs per 1,000 rows")
    for name, request in (("no rules", without), ("100 rules", with_rules),
                          ("10 keys interleaved, 10 rules each", rows(1, 10, 11)),
                          ("1,000 devices, 10 organization-wide rules", rows(3, 1000, 1000))):
        event = committed([request])
        await evaluator.on_readings(event)  # warm the caches

        async def evaluate(event=event):
            await evaluator.on_readings(event)

        value = await per_thousand(evaluate)
        print(f"evaluation, {name}: {value:.1f} µs per 1,000 rows ({value / baseline:.2f}x)")
    print(f"alerts fired: {evaluator.fired} (expected 0: the steady state)")
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
