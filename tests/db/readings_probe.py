"""Process B for the readings broadcast tests: a real process sharing the database that wants
committed readings of some organizations, as a live view does, and prints what it receives.

    python -m tests.db.readings_probe DATABASE_URL REDIS_URL|- ORG_ID[,ORG_ID...] [count]

It runs the product's own relay and broadcast (``telemetra.db.relay``), subscribes to
``ReadingsCommitted`` and sets its interest, prints ``ready`` then one JSON line per batch
received (``{"organization_ids": [...], "values": [...]}``). A line ``interest 1,2`` on its
standard input changes the interest; end of input stops it. ``count`` (bench/relay.py):
prints only ``{"rows": n}``, the rows received so far, every half second.
"""

import asyncio
import json
import sys

from telemetra.db.engine import create_engine
from telemetra.db.relay import relay_for
from telemetra.db.relay.readings import readings_broadcast
from telemetra.ingest.events import ReadingsCommitted
from telemetra.kit.events import EventBus


def _ids(text: str) -> list[int]:
    return [int(i) for i in text.split(",") if i.strip()]


async def main(database_url: str, redis_url: str, organizations: str, mode: str = "") -> None:
    engine = create_engine(database_url)
    bus = EventBus()
    relay = relay_for(engine, bus)
    await relay.start()
    broadcast = readings_broadcast(engine, relay, bus, "" if redis_url == "-" else redis_url)
    await broadcast.start()

    rows = [0]

    def received(batch: ReadingsCommitted) -> None:
        rows[0] += len(batch)
        if mode != "count":
            print(json.dumps({"organization_ids": batch.organization_ids,
                              "values": batch.values}), flush=True)

    async def counts() -> None:
        while True:
            await asyncio.sleep(0.5)
            print(json.dumps({"rows": rows[0]}), flush=True)

    bus.subscribe(ReadingsCommitted, received)
    counting = asyncio.create_task(counts()) if mode == "count" else None
    bus.set_interest(ReadingsCommitted, _ids(organizations))
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            command, _, argument = line.strip().partition(" ")
            if command == "interest":
                bus.set_interest(ReadingsCommitted, _ids(argument))
                print("interest set", flush=True)
    finally:
        if counting is not None:
            counting.cancel()
        await broadcast.stop()
        await relay.stop()
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
