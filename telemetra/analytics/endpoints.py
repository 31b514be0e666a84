from typing import Annotated

from fastapi import APIRouter, Query

from telemetra.analytics import service
from telemetra.analytics.schemas import Summary, Trend
from telemetra.auth.dependencies import CurrentUser
from telemetra.kit.db import ConnDep, TransactionalRoute
from telemetra.kit.errors import Invalid
from telemetra.kit.timeparse import ACCEPTED, parse_query_time
from telemetra.readings.aggregate import FUNCTIONS
from telemetra.readings.buckets import parse_interval, parse_zone
from telemetra.readings.query import ReadingFilter

router = APIRouter(prefix="/analytics", tags=["analytics"], route_class=TransactionalRoute)


@router.get("/summary", response_model=Summary,
            summary="Devices (total, online), sensors, readings today, active alerts")
async def get_summary(conn: ConnDep, user: CurrentUser):
    return await service.summary(conn, user.organization_id)


@router.get("/trends", response_model=Trend, summary="One series of a key across devices",
            description="Aggregates every valid reading of sensors with this `key` (optionally "
                        "of one site or group) into buckets, like /readings/aggregate.")
async def get_trend(
    conn: ConnDep, user: CurrentUser,
    key: Annotated[str, Query(min_length=1, max_length=100)],
    interval: Annotated[str, Query(max_length=12)] = "1h",
    fn: Annotated[str, Query(max_length=10)] = "avg",
    start: Annotated[str | None, Query(max_length=64, description=ACCEPTED)] = "-1d",
    end: Annotated[str | None, Query(max_length=64, description=ACCEPTED)] = None,
    tz: Annotated[str, Query(max_length=64)] = "UTC",
    site_id: int | None = None,
    group_id: int | None = None,
):
    if fn not in FUNCTIONS:
        raise Invalid(f"fn: {fn!r} is not one of {', '.join(FUNCTIONS)}", loc=["query", "fn"])
    where = ReadingFilter(
        organization_id=user.organization_id, keys=[key], site_id=site_id, group_id=group_id,
        start=parse_query_time(start, name="start") if start else None,
        end=parse_query_time(end, name="end") if end else None)
    items = await service.trend(conn, where, parse_interval(interval), fn, parse_zone(tz))
    return {"key": key, "interval": interval, "fn": fn, "items": items}
