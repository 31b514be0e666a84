"""Ingestion over HTTP: a device (or a member naming one) posts readings; import of history.

The hot case is answered before routing by ``telemetra.ingest.fastpath``; these routes answer
everything else and document the endpoints."""

from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request, status
from fastapi.responses import Response

from telemetra.auth.dependencies import AuthDevice, IngestPrincipal
from telemetra.auth.roles import Role
from telemetra.ingest.decode import FORMATS, decode_body, parse_json
from telemetra.ingest.fastpath import THROTTLED
from telemetra.ingest.ingest import Target, find_target, find_target_of_sensors
from telemetra.ingest.schemas import INGEST_BODY, ImportResult, IngestResult
from telemetra.kit.body import INGEST, STREAM, body_limit
from telemetra.kit.errors import Forbidden, Invalid, NotFound
from telemetra.readings import transfer
from telemetra.system.metrics import INGESTED

ingest_router = APIRouter(tags=["readings"])

_INGEST_RESPONSES = {
    404: {"description": "The device is not one of the caller's"},
    413: {"description": "The body is over the size limit"},
    429: {"description": "The device key's rate limit (`rate_limited`) or the organization's "
                         "daily readings quota (`quota_exceeded`, until midnight UTC) is "
                         "reached; see Retry-After"},
    422: {"description": "The body is none of the formats, none of its readings can be "
                         "stored (the problem's `rejected` lists each with its reason), or the "
                         "database refused its readings (the detail says why)"},
    503: {"description": "Ingestion is saturated or the database is down; see Retry-After"},
}
_INGEST_DESCRIPTION = (
    "The body's seven formats are described, each with an example, with the request body "
    "below. Answered 202 only after the readings are durably committed. A reading whose sensor and "
    "time are stored already counts as a duplicate and is not stored twice; a bad reading is "
    "rejected alone with a reason: a value that is not a finite number, a time before "
    "TELEMETRA_MIN_READING_TIME or more than TELEMETRA_MAX_FUTURE_SECONDS ahead (`in the "
    "future`), a NUL character, `meta` deeper than 16 levels or over 16 KiB, a new key past "
    "TELEMETRA_MAX_NEW_SENSORS_PER_REQUEST or TELEMETRA_MAX_SENSORS_PER_DEVICE. A body none of "
    "whose readings can be stored is a 422 carrying the same `rejected`; a body that is none "
    "of the formats is a 422; over the size limit a 413; a 503 with Retry-After only when "
    "ingestion is saturated or the database is unavailable. The formats' field names "
    "(`sensor_id`, `value`, `unit`, `ts`, `status`...) are never sensor keys. Readings by "
    "`sensor_id` store to that sensor of the caller's device (a user may leave device_id out: "
    "the sensors name it)."
)


async def _target(request: Request, principal, device_id: int | None) -> Target | None:
    """The device named (the caller's own for a device key), or None: a user's readings
    by sensor id name theirs (``_target_of_sensors``, once the body is read)."""
    if isinstance(principal, AuthDevice):
        if device_id is not None and device_id != principal.id:
            raise NotFound(f"device {device_id} not found")
        target = Target(principal.id, principal.organization_id)
        if not request.scope.get(THROTTLED):  # (counted already if the fast path passed it on)
            await request.app.state.ingestor.throttle(target)  # 429 past the key's limit
        return target
    if not principal.role.at_least(Role.member):
        raise Forbidden("this needs the member role or higher")
    if device_id is None:
        return None
    target = await find_target(request.app.state.engine, principal.organization_id, device_id)
    if target is None:
        raise NotFound(f"device {device_id} not found")
    return target


async def _target_of_sensors(request: Request, organization_id: int, body) -> Target:
    """A user's readings by sensor id (body 7) need no device_id: the sensors name it, if
    they are of one device of the organization."""
    required = Invalid("device_id is required when a user sends readings other than by "
                       "sensor id", loc=["query", "device_id"])
    try:
        # Lenient: an unknown field is the real decode's to name, not "device_id is required".
        readings, _ = decode_body(body, expect="sensor_id", strict=False)
    except Invalid:
        raise required from None
    sensor_ids = {r.sensor_id for r in readings}
    if not sensor_ids:
        raise required
    targets = await find_target_of_sensors(request.app.state.engine, organization_id,
                                           sensor_ids)
    if not targets:
        raise NotFound("no such sensor in the organization")
    if len(targets) > 1:
        raise Invalid("these sensors are of several devices: send each device's readings "
                      "apart, or name device_id", loc=["query", "device_id"])
    return targets[0]


def _formats_once(error: Invalid) -> None:
    """A body that is none of the formats: its problem lists them once, in the detail; the
    error's ``msg`` says only what was wrong (it repeated the whole list)."""
    suffix = "; " + FORMATS
    errors = error.extra.get("errors") or []
    if error.detail.endswith(suffix) and len(errors) == 1 and errors[0]["msg"] == error.detail:
        error.extra["errors"] = [{**errors[0], "msg": error.detail[:-len(suffix)]}]


async def _ingest(request: Request, principal, device_id: int | None) -> Response:
    try:
        return await _ingest_body(request, principal, device_id)
    except Invalid as error:
        _formats_once(error)
        raise


async def _ingest_body(request: Request, principal, device_id: int | None) -> Response:
    target = await _target(request, principal, device_id)
    raw = await request.body()  # bounded by BodyLimitMiddleware (INGEST)
    body = parse_json(raw)
    if target is None:
        target = await _target_of_sensors(request, principal.organization_id, body)
    result = await request.app.state.ingestor.ingest(target, body)
    INGESTED["http"].inc(result["accepted"])
    if isinstance(principal, AuthDevice):  # contact from the device (a user's is not)
        request.app.state.presence.mark(principal.id)
    # The hot path answers with bytes it made itself; IngestResult documents the shape.
    return Response(orjson.dumps(result), status_code=status.HTTP_202_ACCEPTED,
                    media_type="application/json")


@ingest_router.post("/readings", response_model=IngestResult, status_code=status.HTTP_202_ACCEPTED,
             summary="Send readings (device key, or a member naming device_id)",
             description=_INGEST_DESCRIPTION, openapi_extra=INGEST_BODY,
             responses=_INGEST_RESPONSES)
@body_limit(INGEST)
async def ingest_readings(request: Request, principal: IngestPrincipal,
                          device_id: Annotated[int | None, Query()] = None):
    return await _ingest(request, principal, device_id)


@ingest_router.post("/devices/{device_id}/readings", response_model=IngestResult,
             status_code=status.HTTP_202_ACCEPTED,
             summary="Send readings for the device in the path",
             description=_INGEST_DESCRIPTION, openapi_extra=INGEST_BODY,
             responses=_INGEST_RESPONSES)
@body_limit(INGEST)
async def ingest_device_readings(device_id: int, request: Request, principal: IngestPrincipal):
    return await _ingest(request, principal, device_id)


_IMPORT_BODY = {"requestBody": {"required": True, "content": {
    "text/csv": {"schema": {"type": "string"}},
    "application/x-ndjson": {"schema": {"type": "string"}},
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "file": {"type": "string", "format": "binary"}}, "required": ["file"]}},
}}}


@ingest_router.post("/readings/import", response_model=ImportResult,
                    summary="Import historical readings from CSV or NDJSON (member)",
                    responses={503: _INGEST_RESPONSES[503]},
                    description="Columns (CSV header) or fields: `device_id` (or pass it as a "
                                "query parameter), `key`, `ts`, `value`, optional `tags`. "
                                "Streamed in batches; answered like ingestion, with line numbers "
                                "(1-based) as `index`.", openapi_extra=_IMPORT_BODY)
@body_limit(STREAM)
async def import_readings(
    request: Request, principal: IngestPrincipal,
    device_id: Annotated[int | None, Query(description="Device of rows that name none")] = None,
    format: Annotated[str | None, Query(pattern="^(csv|ndjson)$")] = None,
):
    if isinstance(principal, AuthDevice) or not principal.role.at_least(Role.member):
        raise Forbidden("importing needs a user with the member role or higher")
    if device_id is not None and await find_target(request.app.state.engine,
                                                   principal.organization_id, device_id) is None:
        raise NotFound(f"device {device_id} not found")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise Invalid("send the file in a form field named file", loc=["body", "file"])
        fmt = format or ("ndjson" if (upload.filename or "").endswith(("json", "jsonl"))
                         else "csv")

        async def chunks():
            while chunk := await upload.read(65_536):
                yield chunk
    else:
        fmt = format or ("ndjson" if "json" in content_type else "csv")
        chunks = request.stream
    report = await transfer.import_stream(request.app.state.ingestor, principal.organization_id,
                                          chunks(), fmt, device_id)
    if report.rejected_total and not report.accepted and not report.duplicates:
        # As for ingestion: a file nothing of which can be stored is a 422 carrying why, so a
        # client that checks only the status sees it.
        reasons = list(dict.fromkeys(r["reason"] for r in report.rejected))
        raise Invalid(f"no line of the file can be stored: {'; '.join(reasons[:3])}"
                      + ("; ..." if len(reasons) > 3 else ""), loc=["body"],
                      **report.as_dict())
    return report.as_dict()
