"""Benchmarks only: every ``EventBus`` of a process started with this folder on PYTHONPATH
gets a trivial ``ReadingsCommitted`` subscriber (``BENCH_SUBSCRIBER=1`` in bench/ingest.py).

So the writer builds and publishes the event of every batch, as it will once live sockets and
alert rules subscribe, and the bench measures that cost. A sitecustomize, because uvicorn's
worker processes are spawned afresh and import the app themselves: this runs in each of them.
"""

from telemetra.ingest.events import ReadingsCommitted
from telemetra.kit.events import EventBus

_init = EventBus.__init__
rows_seen = 0


async def _count(event: ReadingsCommitted) -> None:
    global rows_seen
    rows_seen += len(event)


def _init_with_subscriber(self: EventBus, *args, **kwargs) -> None:
    _init(self, *args, **kwargs)
    self.subscribe(ReadingsCommitted, _count, name="bench subscriber")


EventBus.__init__ = _init_with_subscriber
