"""The ASGI application: ``create_app(settings)`` builds it, the lifespan wires storage."""

import asyncio
import gc
import logging
import time
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from telemetra import __version__
from telemetra.admin.endpoints import router as admin_router
from telemetra.alerts.endpoints import alerts_router, rules_router
from telemetra.alerts.evaluation import Evaluator
from telemetra.alerts.webhooks import WebhookSender
from telemetra.analytics.endpoints import router as analytics_router
from telemetra.auth import service as auth_service
from telemetra.auth.devicekeys import DeviceKeyCache
from telemetra.auth.endpoints import router as auth_router
from telemetra.auth.passwords import use_test_parameters
from telemetra.commands.endpoints import router as commands_router
from telemetra.commands.service import expire_due
from telemetra.connectors.endpoints import router as connectors_router
from telemetra.connectors.pull import Puller
from telemetra.dashboards.endpoints import router as dashboards_router
from telemetra.db.engine import create_engine
from telemetra.db.migrate import upgrade
from telemetra.db.relay import CachesStale, relay_for
from telemetra.db.relay.readings import readings_broadcast
from telemetra.devices.endpoints import router as devices_router
from telemetra.devices.events import DeviceChanged
from telemetra.devices.status import report_transitions
from telemetra.groups.endpoints import router as groups_router
from telemetra.ingest.endpoints import ingest_router
from telemetra.ingest.fastpath import DeviceIngestFastPath
from telemetra.ingest.ingest import Ingestor
from telemetra.ingest.partitions import Partitions, months_around
from telemetra.ingest.retention import apply_retention
from telemetra.ingest.writer import Writer
from telemetra.kit.body import BodyLimitMiddleware
from telemetra.kit.crypto import CONNECTOR_HEADERS, SecretBox
from telemetra.kit.db import write_transaction
from telemetra.kit.events import EventBus
from telemetra.kit.jobs import Jobs
from telemetra.kit.middleware import RequestIdMiddleware
from telemetra.kit.openapi import install_problem_openapi
from telemetra.kit.problems import install_problem_handlers
from telemetra.kit.ratelimit import RateLimits
from telemetra.kit.routes import StrictQuery
from telemetra.kit.timeutil import utcnow
from telemetra.live.endpoints import router as live_router
from telemetra.live.hub import Hub
from telemetra.mqtt.bridge import MqttBridge
from telemetra.mqtt.presence import Presence
from telemetra.orgs.endpoints import router as orgs_router
from telemetra.orgs.events import InvalidTagsChanged, PlanChanged
from telemetra.orgs.plans import Plans, register
from telemetra.orgs.usage import UsageMeter
from telemetra.readings.endpoints import router as readings_router
from telemetra.sensors.endpoints import router as sensors_router
from telemetra.sensors.events import SensorChanged
from telemetra.settings import Environment, Settings, get_settings
from telemetra.sites.endpoints import router as sites_router
from telemetra.system import metrics
from telemetra.system.docs import install_docs
from telemetra.system.endpoints import health_router
from telemetra.system.endpoints import router as system_router
from telemetra.system.index import index_router
from telemetra.users.endpoints import router as users_router
from telemetra.web.endpoints import install_web

log = logging.getLogger("telemetra")

API_PREFIX = "/api/v1"
COMMAND_EXPIRY_SECONDS = 5.0
REACTION_SECONDS = 1.0  # device status, due for_seconds alerts, webhook deliveries
# What a browser's script may read of an answer from another origin, besides the basics.
CORS_EXPOSED_HEADERS = ["X-Request-ID", "Retry-After", "Location", "RateLimit-Limit",
                        "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy"]
METRICS_SAMPLE_SECONDS = 10.0  # gauges of state, and samples of the per-minute rates


# Ingestion first: routes are matched in order, and it is the hot path.
FEATURE_ROUTERS = (ingest_router, auth_router, users_router, orgs_router, sites_router,
                   devices_router, commands_router, sensors_router, groups_router,
                   readings_router, connectors_router, analytics_router, rules_router,
                   alerts_router, dashboards_router, admin_router, system_router, live_router,
                   index_router)


async def expire_commands(engine, events: EventBus) -> None:
    async with write_transaction(engine, events) as conn:
        await expire_due(conn, utcnow())


def keep_caches_true(events: EventBus, device_keys: DeviceKeyCache, ingestor: Ingestor) -> None:
    """This process's caches drop what a committed change made stale, whichever transport
    (HTTP, MQTT, the command line) or process made it."""
    events.subscribe(DeviceChanged, lambda changed: device_keys.forget(changed.device_id),
                     name="device keys")
    events.subscribe(DeviceChanged, lambda changed: ingestor.forget_device(changed.device_id),
                     name="ingestor devices")
    events.subscribe(SensorChanged, lambda changed: ingestor.forget_device(changed.device_id),
                     name="ingestor sensors")
    events.subscribe(InvalidTagsChanged,
                     lambda changed: ingestor.forget_organization(changed.organization_id),
                     name="ingestor invalid tags")
    # Events from other processes may have been missed (telemetra.db.relay): forget it all.
    events.subscribe(CachesStale, lambda _stale: device_keys.clear(), name="device keys, all")
    events.subscribe(CachesStale, lambda _stale: ingestor.forget_everything(),
                     name="ingestor, all")


SHUTDOWN_STEP_SECONDS = 15


async def _stopping(what: str, step) -> None:
    """One step of shutting down, bounded: a step that fails or hangs is logged, naming it
    (and, hung, where every task waits), and the others still run (a process that never
    exits is worse than one step cut short; what was acknowledged is committed before any of
    these)."""
    task = asyncio.ensure_future(step)
    task.set_name(f"shutdown step: {what}")
    try:
        done, _ = await asyncio.wait({task}, timeout=SHUTDOWN_STEP_SECONDS)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        log.error("shutting down: %s did not stop in %d s; going on without it; where the "
                  "tasks wait:\n%s", what, SHUTDOWN_STEP_SECONDS, _task_stacks())
        task.cancel()
        await asyncio.wait({task})
    elif not task.cancelled() and task.exception() is not None:
        log.warning("shutting down: %s failed", what, exc_info=task.exception())


def _task_stacks() -> str:
    """Where each of this loop's other tasks waits (its chain of awaits, innermost last), for
    the log of a step that hung."""
    lines = []
    for task in asyncio.all_tasks():
        if task is asyncio.current_task():
            continue
        lines.append(f"task {task.get_name()}:")
        coro = task.get_coro()
        while coro is not None:
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
            if frame is None:
                break
            lines.append(f"  {frame.f_code.co_qualname} ({frame.f_code.co_filename}:"
                         f"{frame.f_lineno})")
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return "\n".join(lines)


async def _commands_are_polled(device_id: int) -> None:
    """Without MQTT, a device back online fetches its queued commands itself (HTTP)."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    if settings.env == Environment.test:
        use_test_parameters()  # cheap password hashes: see telemetra.auth.passwords

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine = create_engine(settings.database_url,
                               query_timeout=settings.query_timeout_seconds)
        app.state.engine = engine
        register(engine, app.state.plans)
        events = EventBus()  # subscribers are wired below, before anything can publish
        app.state.events = events
        relay = broadcast = None
        try:
            await upgrade(engine)
            await auth_service.seed(engine, settings)
            # Other processes' events, from before anything here caches (telemetra.db.relay).
            relay = relay_for(engine, events)
            if relay is not None:
                await relay.start()
            # Committed readings to the other processes that ask (telemetra.db.relay.readings).
            broadcast = readings_broadcast(engine, relay, events, settings.redis_url)
            app.state.readings_broadcast = broadcast
            if broadcast is not None:
                await broadcast.start()
            partitions = Partitions(engine)
            await partitions.ensure(months_around(utcnow()))
            usage = UsageMeter(engine, app.state.plans)
            app.state.usage = usage
            events.subscribe(PlanChanged, lambda changed: usage.forget(changed.organization_id),
                             name="usage limits")
            rate_limits = RateLimits.from_settings(settings)
            app.state.rate_limits = rate_limits
            writer = Writer(engine, partitions, max_pending_rows=settings.ingest_queue_rows,
                            max_batch_rows=settings.ingest_batch_rows, events=events,
                            on_committed=usage.count)
            await writer.start()
            app.state.ingestor = Ingestor.from_settings(engine, writer, settings, events,
                                                        usage=usage, rate_limits=rate_limits)
            app.state.device_keys = DeviceKeyCache(settings.device_key_cache_size,
                                                   settings.device_key_cache_seconds)
            keep_caches_true(events, app.state.device_keys, app.state.ingestor)
            evaluator = Evaluator(engine, events, timedelta(hours=settings.webhook_retry_hours))
            evaluator.subscribe()
            app.state.evaluator = evaluator
            webhooks = WebhookSender(engine, events, app.state.secret_box,
                                     timeout=settings.webhook_timeout_seconds)
            await webhooks.start()
            app.state.webhooks = webhooks
            puller = Puller(engine, app.state.ingestor, app.state.connector_box,
                            allowed_hosts=settings.connector_allowed_hosts,
                            max_body_bytes=settings.max_body_bytes)
            await puller.start()
            app.state.puller = puller
            app.state.partitions = partitions
            app.state.live = Hub(app, events, queue_size=settings.live_queue_messages,
                                 flush_seconds=settings.live_flush_seconds)
            app.state.live.wire()
            mqtt = (MqttBridge(settings, engine, app.state.ingestor, events)
                    if settings.mqtt_url else None)
            app.state.mqtt = mqtt
            # Contact from devices, whatever their transport: readings sent over HTTP with a
            # device key mark their device seen, as MQTT uplinks do (one write a second).
            app.state.presence = (mqtt.presence if mqtt is not None
                                  else Presence(engine, _commands_are_polled))
            app.state.started = time.monotonic()
            app.state.rates = metrics.Rates()
            jobs = Jobs()
            jobs.every(settings.maintenance_seconds, "partitions",
                       lambda: partitions.ensure(months_around(utcnow())))
            jobs.every(settings.maintenance_seconds, "retention",
                       lambda: apply_retention(engine, partitions, utcnow(), app.state.plans))
            jobs.every(settings.usage_flush_seconds, "usage counters", usage.flush)
            jobs.every(COMMAND_EXPIRY_SECONDS, "command expiry",
                       lambda: expire_commands(engine, events))
            if relay is not None:
                jobs.every(settings.maintenance_seconds, "relayed events", relay.prune)
            jobs.every(REACTION_SECONDS, "device status", lambda: report_transitions(engine,
                                                                                     events))
            jobs.every(REACTION_SECONDS, "alerts due", evaluator.promote_due)
            jobs.every(REACTION_SECONDS, "webhooks", webhooks.run_once)
            jobs.every(REACTION_SECONDS, "connector pulls", puller.run_due)
            # Logout and password changes record no event: sockets' tokens are checked again.
            jobs.every(settings.live_recheck_seconds, "live sockets' tokens",
                       app.state.live.recheck_all)
            jobs.every(METRICS_SAMPLE_SECONDS, "metrics", lambda: metrics.refresh(app.state))
            if mqtt is None:  # the MQTT link flushes its own
                jobs.every(1.0, "presence", app.state.presence.flush)
            await events.start()
            if mqtt is not None:
                await mqtt.start()
            # What start-up made lives as long as the process: out of the collector's sight.
            # Measured on a 1,000-reading body, full collections walking it made decoding
            # half again as slow. Once per process: a process that starts apps again (the
            # test suite) would freeze each earlier app's garbage for good, and grow.
            if gc.get_freeze_count() == 0:
                gc.collect()
                gc.freeze()
            try:
                yield
            finally:
                if mqtt is not None:
                    await _stopping("the MQTT link", mqtt.stop())
                await _stopping("the jobs", jobs.stop())
                await _stopping("the writer", writer.stop())
                # what this process counted since the last flush
                await _stopping("the last usage counts", usage.flush())
                await _stopping("the rate limits", rate_limits.close())
                await _stopping("the ingestor", app.state.ingestor.close())
                await _stopping("the live sockets", app.state.live.stop())
                await _stopping("the event subscribers", events.stop())
                await _stopping("the webhook deliveries", webhooks.stop())
                await _stopping("the connector pulls", puller.stop())
                metrics.process_stopped()
        finally:
            if broadcast is not None:
                await _stopping("the readings broadcast", broadcast.stop())
            if relay is not None:
                await _stopping("the relay", relay.stop())
            await _stopping("the database engine", engine.dispose())

    app = FastAPI(
        title="Telemetra",
        version=__version__,
        description="Open-source IoT device and telemetry platform. Errors are "
                    "`application/problem+json` with a stable `code`.\n\n"
                    "**Live data** (WebSocket, not listed below as OpenAPI cannot describe "
                    "sockets): `/api/v1/ws?token=<access token>` (or a first "
                    '`{"type": "auth", "token": ...}` message within 10 s), then '
                    '`{"type": "subscribe", "id"?, "topic": "readings" | "device-status" | '
                    '"alerts" | "commands", "device_id"? | "site_id"? | "group_id"?, '
                    '"keys"?: [...]}`, `{"type": "unsubscribe", "id"}`, `{"type": "ping"}`. '
                    "`/api/v1/ws/live-data`, `/api/v1/ws/device-status` and `/api/v1/ws/alerts` "
                    "are subscribed to one topic for the whole organization. Under the API's "
                    "base path like every route but `/health` and `/metrics`; see the README, "
                    "Live data.",
        lifespan=lifespan,
        docs_url=None, redoc_url=None,  # served from local assets (telemetra.system.docs)
    )
    app.state.settings = settings
    app.state.secret_box = SecretBox(settings.secret_key)
    app.state.connector_box = SecretBox(settings.secret_key, CONNECTOR_HEADERS)
    app.state.plans = Plans.from_settings(settings)  # a bad TELEMETRA_PLANS stops start-up
    install_problem_handlers(app)
    # Every route refuses query parameters it does not declare (API.md, "Strict input").
    app.include_router(health_router, dependencies=[StrictQuery])
    install_docs(app)
    for feature in FEATURE_ROUTERS:
        app.include_router(feature, prefix=API_PREFIX, dependencies=[StrictQuery])
    install_web(app)  # after the API: its pages are a fixed list that shadows none of it
    install_problem_openapi(app)
    # Innermost: it sees the body the fast path replays when it passes a request on.
    app.add_middleware(BodyLimitMiddleware, default_limit=settings.max_request_bytes,
                       ingest_limit=settings.max_body_bytes)
    app.add_middleware(DeviceIngestFastPath, prefix=API_PREFIX)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_credentials=True, allow_methods=["*"], allow_headers=["*"],
                           expose_headers=CORS_EXPOSED_HEADERS)
    app.add_middleware(metrics.HttpMetricsMiddleware)  # the fast path's requests too
    app.add_middleware(RequestIdMiddleware, hsts=settings.env is Environment.production)
    return app
