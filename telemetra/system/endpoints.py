import asyncio
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from telemetra import __version__

log = logging.getLogger("telemetra.health")

health_router = APIRouter(tags=["system"])
router = APIRouter(prefix="/system", tags=["system"])


class Health(BaseModel):
    status: str
    database: str
    mqtt: str
    version: str


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
    body = {"status": "ok" if database == "up" else "unavailable", "database": database,
            "mqtt": "disabled", "version": __version__}
    return JSONResponse(body, status_code=200 if database == "up" else 503)


@router.get("/version", response_model=Version, summary="The running version")
async def version():
    return {"version": __version__}
