"""What checking rate limits and quotas costs an ingestion request, in-process, in µs.

    .venv/bin/python -u bench/limits_cost.py   # BENCH_LIMITS_CALLS (200,000)

Times, per request, what the ingestor adds when limits are on (``Ingestor.throttle``: the
device key's rate limit; ``_within_quota``: the daily readings quota, its limit cached) against
the same calls with limits off, best of 5 runs each. Pure CPU in this process, no database:
the figure to set beside a request's whole cost (``bench/ingest.py``, ``BENCH_LIMITS=compare``
measures end to end, where run-to-run noise is larger than the difference).
"""

import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from telemetra.kit.ratelimit import RateLimiter, RateLimits  # noqa: E402
from telemetra.orgs.usage import UsageMeter  # noqa: E402

CALLS = int(os.environ.get("BENCH_LIMITS_CALLS", "200000"))


async def per_request(limits: RateLimits | None, meter: UsageMeter | None) -> float:
    """µs per request for the checks ``Ingestor`` makes (device 7 of organization 1)."""
    async def checks():
        if limits is not None and limits.ingest is not None:
            await limits.device(7)
        if meter is not None:
            await meter.refuses(1, 7, 1000)

    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(CALLS):
            await checks()
        best = min(best, time.perf_counter() - start)
    return best / CALLS * 1e6


async def main() -> None:
    on = RateLimits(RateLimiter(), ingest="1000000000/second")
    meter = UsageMeter(engine=None, plans=None)
    meter._limits[1] = 2_000_000_000  # the organization's plan, as cached after its first body
    off = RateLimits(RateLimiter(), ingest="off")
    off_us = await per_request(off, None)
    on_us = await per_request(on, meter)
    print(f"{CALLS:,} requests, best of 5: limits off {off_us:.2f} µs, on {on_us:.2f} µs a "
          f"request; the checks cost {on_us - off_us:.2f} µs a request")


asyncio.run(main())
