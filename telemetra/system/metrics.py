"""Prometheus metrics (prometheus-client): what they are, how requests are timed, the scrape.

The transports count what they stored once per request or batch (``INGESTED[transport]``,
an increment of the batch's count), never per reading. Gauges of state (the writer's queue,
WebSocket connections, the MQTT link) are read from the app's parts by ``sample``, every few
seconds and at each scrape, so nothing on a hot path keeps them.

Several worker processes (``telemetra serve --workers N``): prometheus-client's multiprocess
mode. ``serve`` gives the workers a fresh ``PROMETHEUS_MULTIPROC_DIR``; each process writes its
values there, and a scrape, whichever worker answers it, reads them all: counters and
histograms summed over the workers (those of a worker that died included, so no counter goes
back), gauges summed over the live ones. One worker (or none of that variable) keeps them in
memory, with the process and garbage collector metrics beside them.
"""

import asyncio
import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MULTIPROCESS = bool(os.environ.get(MULTIPROC_ENV))  # as prometheus-client saw it at import
CONTENT_TYPE = CONTENT_TYPE_LATEST
TRANSPORTS = ("http", "fastpath", "mqtt", "connector", "import")
UNMATCHED = "unmatched"  # a request no route took (a 404): never its raw path
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

_READINGS_INGESTED = Counter(
    "telemetra_readings_ingested", "Readings stored (new ones; duplicates are not counted), "
    "by the transport they came by", ["transport"])
INGESTED = {transport: _READINGS_INGESTED.labels(transport=transport)
            for transport in TRANSPORTS}
HTTP_REQUEST_DURATION = Histogram(
    "telemetra_http_request_duration_seconds", "HTTP requests, by route template, method "
    "and status, from the request to the end of the response",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
WRITER_QUEUE_ROWS = Gauge("telemetra_writer_queue_rows", "Readings waiting for the "
                          "group-commit writer", multiprocess_mode="livesum")
WRITER_BATCH_ROWS = Histogram(
    "telemetra_writer_batch_rows", "Readings in each batch the group-commit writer committed",
    buckets=(1, 10, 100, 1_000, 5_000, 10_000, 50_000, 100_000))
MQTT_MESSAGES = Counter("telemetra_mqtt_messages", "MQTT messages received from the broker")
MQTT_REJECTED = Counter("telemetra_mqtt_rejected_messages", "MQTT messages dropped "
                        "(acknowledged, not stored), by reason", ["reason"])
MQTT_CONNECTED = Gauge("telemetra_mqtt_connected", "1 while every process is connected to the "
                       "broker (0 when one is not); absent when MQTT is disabled",
                       multiprocess_mode="livemin")
WEBSOCKET_CONNECTIONS = Gauge("telemetra_websocket_connections", "Open live WebSockets",
                              multiprocess_mode="livesum")
ALERTS_FIRED = Counter("telemetra_alerts_fired", "Alerts opened")
WEBHOOK_DELIVERIES = Counter("telemetra_webhook_deliveries", "Webhook delivery attempts, by "
                             "result: delivered, retried (to be tried again), failed (given up)",
                             ["result"])


def sample(state) -> None:
    """Set this process's gauges from the app's parts (``app.state``)."""
    ingestor = getattr(state, "ingestor", None)
    if ingestor is not None:
        WRITER_QUEUE_ROWS.set(ingestor.writer.queue_depth)
    live = getattr(state, "live", None)
    if live is not None:
        WEBSOCKET_CONNECTIONS.set(len(live.connections))
    mqtt = getattr(state, "mqtt", None)
    if mqtt is not None:
        MQTT_CONNECTED.set(1 if mqtt.status == "connected" else 0)


async def refresh(state) -> None:
    """The periodic job: this process's gauges, and a sample for the per-minute rates."""
    sample(state)
    await asyncio.to_thread(state.rates.take)


def _every_process() -> CollectorRegistry:
    """Every worker's values, read from the multiprocess directory (blocking file reads)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def exposition() -> bytes:
    """The text a scrape gets (blocking file reads in multiprocess mode: call it off the loop)."""
    return generate_latest(_every_process() if MULTIPROCESS else REGISTRY)


def totals() -> dict[str, float]:
    """Every process's totals that the people's view makes rates of: HTTP requests, and
    readings stored by transport (from the two families' samples, not a rendered scrape)."""
    if MULTIPROCESS:  # blocking file reads: call it off the loop
        families = _every_process().collect()
    else:
        families = [*HTTP_REQUEST_DURATION.collect(), *_READINGS_INGESTED.collect()]
    found = {"requests": 0.0, **{f"readings_{t}": 0.0 for t in TRANSPORTS}}
    for family in families:
        if family.name == "telemetra_http_request_duration_seconds":
            found["requests"] = sum(s.value for s in family.samples
                                    if s.name.endswith("_count"))
        elif family.name == "telemetra_readings_ingested":
            for s in family.samples:
                if s.name.endswith("_total"):
                    found[f"readings_{s.labels['transport']}"] = s.value
    return found


def process_stopped() -> None:
    """At a worker's shutdown: its live gauges leave the sums (counters stay)."""
    if MULTIPROCESS:
        multiprocess.mark_process_dead(os.getpid())


class Rates:
    """Per-minute rates of ``totals()``, from samples taken every few seconds (the last
    minute's oldest against now)."""

    WINDOW_SECONDS = 60.0

    def __init__(self) -> None:
        self._samples: list[tuple[float, dict[str, float]]] = []

    def take(self) -> dict[str, float]:
        now = time.monotonic()
        current = totals()
        self._samples.append((now, current))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.WINDOW_SECONDS:
            self._samples.pop(0)
        return current

    def per_second(self) -> tuple[dict[str, float], dict[str, float], float]:
        """Now's totals, their rates per second over the window, and the window's seconds
        (rates are 0 until a second sample, a few seconds after start)."""
        current = self.take()
        then, old = self._samples[0]
        elapsed = time.monotonic() - then
        if elapsed <= 0:
            return current, {name: 0.0 for name in current}, 0.0
        return current, {name: (value - old.get(name, 0.0)) / elapsed
                         for name, value in current.items()}, elapsed


def full_template(route, path: str) -> str:
    """The template of the route that took ``path``, with the prefix it was included under:
    a route knows its own template only (``/devices/{device_id}``), the prefix
    (``/api/v1``) is what of the path comes before the part its pattern matches."""
    own = getattr(route, "path_format", None) or getattr(route, "path", None)
    regex = getattr(route, "path_regex", None)
    if own is None:
        return UNMATCHED
    if regex is None or regex.match(path):
        return own
    for cut in range(1, len(path)):
        if path[cut] == "/" and regex.match(path[cut:]):
            return path[:cut] + own
    return own


class HttpMetricsMiddleware:
    """Times every HTTP request into ``telemetra_http_request_duration_seconds``, labelled by
    the route that took it (its template: ``/api/v1/devices/{device_id}``), or
    ``scope["route_template"]`` set by whatever answered before routing (the ingestion fast
    path), or ``unmatched``."""

    def __init__(self, app) -> None:
        self.app = app
        self._children: dict[tuple[str, str, int], object] = {}
        self._templates: dict[int, str] = {}  # id(route) -> its template, prefix included

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raised before answering

        async def send_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self._observe(scope, status, time.perf_counter() - started)

    def _observe(self, scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        if route is not None:
            template = self._templates.get(id(route))  # routes live as long as the app
            if template is None:
                template = self._templates[id(route)] = full_template(route, scope["path"])
        else:
            template = scope.get("route_template", UNMATCHED)
        method = scope["method"]
        key = (template, method, status)
        child = self._children.get(key)
        if child is None:  # a client's made-up method is not a label of its own
            child = HTTP_REQUEST_DURATION.labels(
                route=template, method=method if method in _METHODS else "other",
                status=str(status))
            self._children[key] = child
        child.observe(seconds)
