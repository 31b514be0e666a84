"""Periodic background jobs in the lifespan: a failure is logged and the job runs again."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("telemetra.jobs")


class Jobs:
    def __init__(self) -> None:
        self._tasks: list[asyncio.Task] = []

    def every(self, seconds: float, name: str, job: Callable[[], Awaitable[object]]) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(seconds)
                try:
                    await job()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("background job %s failed; it runs again in %ss", name,
                                  seconds)

        self._tasks.append(asyncio.create_task(loop(), name=f"job-{name}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
