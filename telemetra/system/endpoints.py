import asyncio
import hmac
import logging
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import text

from telemetra import __version__
from telemetra.auth.dependencies import Superadmin
from telemetra.kit.db import TransactionalRoute
from telemetra.kit.errors import Unauthorized
from telemetra.system import metrics as prometheus

log = logging.getLogger("telemetra.health")

health_router = APIRouter(tags=["system"])
router = APIRouter(prefix="/system", tags=["system"], route_class=TransactionalRoute)


class Health(BaseModel):
    status: str = Field(description="`ok`, or `unavailable` when the database is down")
    database: str = Field(description="`up` or `down`")
    mqtt: str = Field(description="`connected`, `down` (reconnecting; HTTP still served) or "
                                  "`disabled` (no `TELEMETRA_MQTT_URL`)")
    mqtt_auth: str | None = Field(
        description="`dynsec`: device logins and ACLs at the broker; `open`: the broker lets "
                    "anyone publish and the topic is trusted (development only); null when "
                    "MQTT is disabled")
    version: str


class Metrics(BaseModel):
    uptime_seconds: float
    ingest_queue_rows: int = Field(description="Readings waiting for the group-commit writer")
    ingest_batches: int
    ingest_rows_written: int
    requests_per_minute: float = Field(description="HTTP requests answered by every worker, "
                                               "over the last minute")
    readings_per_second: float = Field(description="Readings stored by every worker, over "
                                                   "the last minute")
    readings_per_second_by_transport: dict[str, float]
    rate_window_seconds: float = Field(description="What the rates are measured over: a "
                                                   "minute, less just after start")
    readings_ingested: dict[str, int] = Field(description="Readings stored since start, by "
                                                          "transport, every worker's")
    websocket_connections: int = Field(description="This process's open live WebSockets")
    mqtt: dict | None = Field(description="Counters of this process's MQTT consumer (messages "
                                          "received, handled, rejected by reason and by device)"
                                          "; null when MQTT is disabled")


class Version(BaseModel):
    version: str


async def database_status(request: Request) -> str:
    try:
        async with asyncio.timeout(3):
            async with request.app.state.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        return "up"
    except Exception as exc:  # any failure to reach the database means "down", never a 500
        log.warning("health check: database unreachable (%s)", type(exc).__name__)
        return "down"


@health_router.get("/health", response_model=Health, summary="Liveness and dependencies",
                   responses={503: {"model": Health, "description": "The database is down"}})
async def health(request: Request):
    database = await database_status(request)
    mqtt = request.app.state.mqtt
    body = {"status": "ok" if database == "up" else "unavailable", "database": database,
            "mqtt": mqtt.status if mqtt is not None else "disabled",
            "mqtt_auth": mqtt.auth.value if mqtt is not None else None,
            "version": __version__}
    return JSONResponse(body, status_code=200 if database == "up" else 503)


@router.get("/version", response_model=Version, summary="The running version")
async def version():
    return {"version": __version__}


@health_router.get("/metrics", summary="Prometheus metrics",
                   response_class=Response,
                   responses={200: {"content": {"text/plain": {}},
                                    "description": "Prometheus' text format"},
                              401: {"description": "TELEMETRA_METRICS_TOKEN is set and the "
                                                   "bearer token is not it"}},
                   description="Every worker's counters (see the README, Monitoring). With "
                               "TELEMETRA_METRICS_TOKEN set, send it as a bearer token.")
async def prometheus_metrics(request: Request):
    token = request.app.state.settings.metrics_token
    if token:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(),
                                                                  token.encode()):
            raise Unauthorized("send the metrics token (TELEMETRA_METRICS_TOKEN) as a bearer "
                               "token")
    prometheus.sample(request.app.state)
    body = await asyncio.to_thread(prometheus.exposition)
    return Response(body, media_type=prometheus.CONTENT_TYPE)


@router.get("/metrics", response_model=Metrics, summary="The server at a glance (superadmin)",
            description="Uptime, requests per minute and readings per second (every worker's, "
                        "over the last minute), readings stored by transport, the ingestion "
                        "queue, live sockets and the MQTT consumer's counters, bad messages by "
                        "reason and by device included. Uptime, the queue, the sockets and the "
                        "MQTT counters are the answering process's own.")
async def metrics(request: Request, user: Superadmin):
    state = request.app.state
    writer = state.ingestor.writer
    totals, rates, window = await asyncio.to_thread(state.rates.per_second)
    readings = {t: rates[f"readings_{t}"] for t in prometheus.TRANSPORTS}
    return {"uptime_seconds": round(time.monotonic() - state.started, 3),
            "requests_per_minute": round(rates["requests"] * 60, 3),
            "readings_per_second": round(sum(readings.values()), 3),
            "readings_per_second_by_transport": {t: round(r, 3) for t, r in readings.items()},
            "rate_window_seconds": round(window, 3),
            "readings_ingested": {t: int(totals[f"readings_{t}"])
                                  for t in prometheus.TRANSPORTS},
            "websocket_connections": len(state.live.connections),
            "ingest_queue_rows": writer.queue_depth, "ingest_batches": writer.batches,
            "ingest_rows_written": writer.rows_written,
            "mqtt": state.mqtt.metrics() if state.mqtt is not None else None}
