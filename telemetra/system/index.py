"""``GET /api/v1``: what the API has and where, for a person or a client finding its way."""

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from telemetra import __version__

index_router = APIRouter(tags=["system"])

# Under the API's base path: the main collections and the caller's own things.
COLLECTIONS = ("auth/login", "auth/me", "organizations/me", "users", "sites", "devices",
               "sensors", "groups", "readings", "readings/latest", "readings/aggregate",
               "readings/export", "alert-rules", "alerts", "connectors", "dashboards",
               "dashboards/default", "analytics/summary", "system/version")


class ApiIndex(BaseModel):
    name: str
    version: str
    links: dict[str, str] = Field(
        description="Where to go: `docs` (Swagger UI), `redoc`, `openapi` (this API's OpenAPI "
                    "document), `health`, `websocket` (live data), and the main collections, "
                    "each by its path under the API's base path (e.g. `devices`).")


@index_router.get("", response_model=ApiIndex, summary="Index of the API, with links",
                  description="Public: links to the documentation, the OpenAPI document and "
                              "the main collections.")
async def api_index(request: Request):
    base = request.url.path.rstrip("/")
    links = {"docs": "/docs", "redoc": "/redoc", "openapi": "/openapi.json",
             "health": "/health", "websocket": f"{base}/ws"}
    links.update({path: f"{base}/{path}" for path in COLLECTIONS})
    return {"name": "Telemetra", "version": __version__, "links": links}
