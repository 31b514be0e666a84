import asyncio
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import Response, StreamingResponse

from telemetra.auth.dependencies import Admin, CurrentUser
from telemetra.auth.roles import Role
from telemetra.kit.db import ConnDep, TransactionalRoute
from telemetra.kit.errors import Forbidden, Invalid
from telemetra.kit.timeparse import ACCEPTED, parse_query_time
from telemetra.readings import aggregate, query, review, transfer
from telemetra.readings.buckets import parse_interval, parse_zone
from telemetra.readings.flags import ReviewStatus
from telemetra.readings.query import ReadingFilter
from telemetra.readings.schemas import (
    AggregateList,
    Count,
    Reading,
    ReadingPage,
    ReadingUpdate,
    ReviewAction,
    ReviewRequest,
)

router = APIRouter(prefix="/readings", tags=["readings"], route_class=TransactionalRoute)

TimeQuery = Annotated[str | None, Query(max_length=64, description=f"Inclusive. {ACCEPTED}")]


def _time(value, name: str):
    if value is None:
        return None
    return parse_query_time(str(value), name=name)


def reading_filter(
    user: CurrentUser,
    device_id: int | None = None,
    sensor_id: int | None = None,
    keys: Annotated[str | None, Query(max_length=2000,
                                      description="Comma-separated sensor keys")] = None,
    site_id: int | None = None,
    start: TimeQuery = None,
    end: TimeQuery = None,
    status: ReviewStatus | None = None,
    include_invalid: Annotated[bool, Query(description="Admins only")] = False,
) -> ReadingFilter:
    if include_invalid and not user.role.at_least(Role.admin):
        raise Forbidden("only admins may see invalid readings")
    return ReadingFilter(
        organization_id=user.organization_id, device_id=device_id, sensor_id=sensor_id,
        keys=[k.strip() for k in keys.split(",") if k.strip()] if keys else [],
        site_id=site_id, start=_time(start, "start"), end=_time(end, "end"), status=status,
        include_invalid=include_invalid)


FilterDep = Annotated[ReadingFilter, Depends(reading_filter)]


@router.get("", response_model=ReadingPage, summary="Query readings",
            description="Newest first unless `order=asc`. Page with `cursor` (keyset, stable "
                        "under inserts) or `skip`.")
async def list_readings(
    conn: ConnDep, where: FilterDep,
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
    limit: Annotated[int, Query(ge=1, le=query.MAX_LIMIT)] = 100,
    skip: Annotated[int, Query(ge=0)] = 0,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
):
    items, next_cursor = await query.list_readings(conn, where, order=order, limit=limit,
                                                   skip=skip, cursor=cursor)
    return {"items": items, "next_cursor": next_cursor}


@router.get("/latest", response_model=ReadingPage,
            summary="Latest reading of each sensor of a device, site or sensor",
            description="One reading per sensor (that has one), in sensor id order. Paged like "
                        "reading lists: `limit` sensors a page, and `cursor` from "
                        "`next_cursor` for the next (null at the end).")
async def latest_readings(
    conn: ConnDep, where: FilterDep,
    limit: Annotated[int, Query(ge=1, le=query.MAX_LIMIT)] = 100,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
):
    if where.device_id is None and where.site_id is None and where.sensor_id is None:
        raise Invalid("name a device_id, site_id or sensor_id", loc=["query", "device_id"])
    items, next_cursor = await query.latest_readings(conn, where, limit=limit, cursor=cursor)
    return {"items": items, "next_cursor": next_cursor}


@router.get("/aggregate", response_model=AggregateList, response_model_exclude_unset=True,
            summary="Aggregate readings into time buckets, per sensor",
            description="`interval` from `1s` to `1mo` (s, m, h, d, w, mo); `fn` one or more of "
                        "avg, min, max, sum, count, first, last; `tz` an IANA zone: days, "
                        "weeks (from Monday) and months start at local midnight, so "
                        "daylight-saving days have 23 or 25 hours. Buckets with no data are "
                        "absent. Intervals under a day are fixed lengths aligned to the zone's "
                        "offset.")
async def aggregate_readings(
    conn: ConnDep, where: FilterDep,
    interval: Annotated[str, Query(max_length=12, examples=["1h"])],
    fn: Annotated[str, Query(max_length=100, description="Comma list")] = "avg",
    tz: Annotated[str, Query(max_length=64)] = "UTC",
):
    items = await aggregate.aggregate(conn, where, parse_interval(interval),
                                      aggregate.parse_functions(fn), parse_zone(tz))
    # Up to 100,000 rows: encoded in a thread (AggregateList documents the shape), since
    # validating and encoding them on the event loop held every other request for a second.
    body = await asyncio.to_thread(orjson.dumps, {"items": items}, option=orjson.OPT_UTC_Z)
    return Response(body, media_type="application/json")


@router.get("/export", summary="Export readings as CSV or NDJSON (streamed)",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {}},
                             "description": "Oldest first; CSV has a header row"}})
async def export_readings(request: Request, where: FilterDep,
                          format: Annotated[str, Query(pattern="^(csv|ndjson)$")] = "csv"):
    where.check_range()
    media = "text/csv" if format == "csv" else "application/x-ndjson"
    chunks = await transfer.primed(transfer.export_lines(request.app.state.engine, where, format))
    return StreamingResponse(
        chunks, media_type=media,
        headers={"Content-Disposition": f'attachment; filename="readings.{format}"'})


@router.delete("", response_model=Count, summary="Delete readings by filters (admin)",
               description="Needs a device_id or sensor_id and a time range.")
async def delete_readings(conn: ConnDep, admin: Admin, where: FilterDep):
    where.include_invalid = True
    return {"count": await review.delete_readings(conn, where)}


@router.post("/review", response_model=Count, summary="Validate or archive readings in bulk "
                                                      "(admin)")
async def review_readings(body: ReviewRequest, conn: ConnDep, admin: Admin):
    where = ReadingFilter(organization_id=admin.organization_id, device_id=body.device_id,
                          sensor_id=body.sensor_id, start=_time(body.start, "start"),
                          end=_time(body.end, "end"), include_invalid=True)
    status = (ReviewStatus.validated if body.action is ReviewAction.validate
              else ReviewStatus.archived)
    return {"count": await review.review(conn, where, status)}


@router.get("/{reading_id}", response_model=Reading, summary="One reading")
async def get_reading(reading_id: str, conn: ConnDep, user: CurrentUser):
    return await query.get_reading(conn, user.organization_id, reading_id,
                                   include_invalid=user.role.at_least(Role.admin))


@router.put("/{reading_id}", response_model=Reading,
            summary="Change a reading's value, status or tags (admin)")
async def update_reading(reading_id: str, body: ReadingUpdate, conn: ConnDep, admin: Admin):
    return await review.update_reading(conn, admin.organization_id, reading_id,
                                       body.model_dump(exclude_unset=True))


@router.delete("/{reading_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Delete one reading (admin)")
async def delete_reading(reading_id: str, conn: ConnDep, admin: Admin):
    await review.delete_reading(conn, admin.organization_id, reading_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/{reading_id}/validate", response_model=Reading,
            summary="Validate a pending reading (admin); 409 if validated or archived")
async def validate_reading(reading_id: str, conn: ConnDep, admin: Admin):
    return await review.set_status(conn, admin.organization_id, reading_id,
                                   ReviewStatus.validated)


@router.put("/{reading_id}/archive", response_model=Reading,
            summary="Archive a reading (admin); 409 if archived already")
async def archive_reading(reading_id: str, conn: ConnDep, admin: Admin):
    return await review.set_status(conn, admin.organization_id, reading_id,
                                   ReviewStatus.archived)

