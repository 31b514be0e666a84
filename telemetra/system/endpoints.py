import asyncio
import logging
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text

from telemetra import __version__
from telemetra.auth.dependencies import Superadmin
from telemetra.kit.db import TransactionalRoute

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


@router.get("/metrics", response_model=Metrics, summary="This process's counters (superadmin)",
            description="Uptime, the ingestion queue and the MQTT consumer's counters, bad "
                        "messages by reason and by device included. Per process: with several "
                        "workers each answers for itself.")
async def metrics(request: Request, user: Superadmin):
    state = request.app.state
    writer = state.ingestor.writer
    return {"uptime_seconds": round(time.monotonic() - state.started, 3),
            "ingest_queue_rows": writer.queue_depth, "ingest_batches": writer.batches,
            "ingest_rows_written": writer.rows_written,
            "mqtt": state.mqtt.metrics() if state.mqtt is not None else None}
