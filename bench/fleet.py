"""What the fleet phases of the benchmarks share: many devices created at once, straight in
the database (the API would take minutes for 5,000), and the memory of the server's
processes."""

import asyncio
import os
import time
from pathlib import Path

import httpx
from sqlalchemy import insert

from telemetra.auth.dependencies import DEVICE_KEY_LOOKUP_CHARS, DEVICE_KEY_PREFIX
from telemetra.db.engine import create_engine
from telemetra.db.tables import devices
from telemetra.kit.secrets import random_token, token_hash
from telemetra.kit.timeutil import utcnow

FLEET_DEVICES = int(os.environ.get("BENCH_FLEET_DEVICES", "5000"))
FLEET_KEYS = ("temperature", "humidity", "pressure", "battery", "rssi")  # 5 sensors a device
# Passes of the warm-up: the first creates the sensors; each pass opens fresh connections,
# which land on any of the server's processes, so after a few each process has seen (almost)
# every device, as it would after a while in a real fleet.
WARM_PASSES = int(os.environ.get("BENCH_FLEET_WARM_PASSES", "5"))


async def _create(database_url: str, organization_id: int, count: int) -> list[tuple[int, str]]:
    engine = create_engine(database_url)
    now = utcnow()
    keys, rows = [], []
    while len(rows) < count:
        key = random_token(DEVICE_KEY_PREFIX)  # 48 random bits of prefix: no collision
        keys.append(key)
        rows.append({"organization_id": organization_id, "name": f"fleet-{len(rows)}",
                     "status": "active", "api_key_prefix": key[:DEVICE_KEY_LOOKUP_CHARS],
                     "api_key_hash": token_hash(key), "offline_after_seconds": 300,
                     "created_at": now, "updated_at": now})
    try:
        async with engine.begin() as conn:
            ids = []
            for start in range(0, count, 500):
                result = await conn.execute(insert(devices).returning(devices.c.id),
                                            rows[start:start + 500])
                ids.extend(result.scalars().all())
    finally:
        await engine.dispose()
    return list(zip(ids, keys, strict=True))


def create_devices(database_url: str, organization_id: int,
                   count: int = FLEET_DEVICES) -> list[tuple[int, str]]:
    """``count`` devices of the organization, as (id, key)."""
    return asyncio.run(_create(database_url, organization_id, count))


async def _warm_up(base: str, fleet: list[tuple[int, str]], concurrency: int) -> float:
    body_of = ('{"ts":%d,"values":{' + ",".join(f'"{k}":1' for k in FLEET_KEYS) + "}}")
    failures = 0

    async def worker(client: httpx.AsyncClient, todo) -> None:
        nonlocal failures
        for index, (_, key) in todo:
            for attempt in range(3):  # a kept-alive connection the server closed meanwhile
                try:
                    response = await client.post(
                        "/api/v1/readings", content=body_of % (10**12 + index),
                        headers={"X-API-Key": key, "Content-Type": "application/json"})
                    break
                except httpx.TransportError:
                    if attempt == 2:
                        raise
            failures += response.status_code != 202  # a re-sent reading is a duplicate: 202

    started = time.monotonic()
    for n in range(WARM_PASSES):
        todo = iter(enumerate(fleet, start=n * len(fleet)))  # a time of its own each
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            await asyncio.gather(*[worker(client, todo) for _ in range(concurrency)])
    if failures:
        raise RuntimeError(f"{failures} warm-up requests were not accepted")
    return len(fleet) * WARM_PASSES / (time.monotonic() - started)


def warm_up(base: str, fleet: list[tuple[int, str]], concurrency: int = 32) -> float:
    """Each device posts WARM_PASSES times, all its sensors in one body (created the first
    time): afterwards every sensor has been seen. Returns the requests per second."""
    return asyncio.run(_warm_up(base, fleet, concurrency))


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (the server's workers), in MB."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024
