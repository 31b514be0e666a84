"""Render every error as application/problem+json (RFC 9457), never a stack trace."""

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from telemetra.db.engine import is_query_timeout
from telemetra.kit.body import BodyRefused
from telemetra.kit.errors import Conflict, QueryTimeout, TelemetraError, Unavailable
from telemetra.kit.routes import leaf_routes

log = logging.getLogger("telemetra.errors")

PROBLEM_JSON = "application/problem+json"

_CODES_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}


def problem(status: int, detail: str, *, code: str | None = None, title: str | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body = {
        "type": "about:blank",
        "title": title or phrase,
        "status": status,
        "detail": detail,
        "code": code or _CODES_BY_STATUS.get(status, "error"),
        **extra,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for error in exc.errors():
        errors.append({"loc": [str(part) if not isinstance(part, int) else part
                               for part in error.get("loc", ())],
                       "msg": error.get("msg", "invalid")})
    return errors


def _is_unstorable_input(exc: DBAPIError) -> bool:
    """A value the database refuses to store or compare: the client's input, not an outage.

    E.g. an id beyond PostgreSQL's int4 (asyncpg refuses to encode it: a ValueError) or a
    NUL character in a string (SQLSTATE class 22, "data exception").
    """
    if isinstance(exc, DataError):
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if isinstance(sqlstate, str) and sqlstate.startswith("22"):
        return True
    return isinstance(getattr(exc.orig, "__cause__", None), ValueError)


def _unstorable_input() -> JSONResponse:
    detail = "a value in the request is out of range or cannot be stored (e.g. a NUL character)"
    return problem(422, detail, errors=[{"loc": [], "msg": detail}])


def _allowed_methods(request: Request) -> list[str]:
    """The methods the path's resource serves: every route declared with the same path as the
    one that matched. (Starlette's 405 names only the methods of that first route, while e.g.
    GET and POST /users are two routes.)"""
    matched = request.scope.get("route")
    routes = list(leaf_routes(request.app))
    template = next((r.path_format for r in routes
                     if getattr(r, "original_route", r) is matched), None)
    if template is None:
        return sorted(getattr(matched, "methods", None) or ())
    return sorted({method for r in routes if r.path_format == template
                   for method in (r.methods or ())})


def install_problem_handlers(app: FastAPI) -> None:
    """Map every exception the app can raise onto one problem+json shape."""

    @app.exception_handler(TelemetraError)
    async def _telemetra_error(request: Request, exc: TelemetraError) -> JSONResponse:
        return problem(exc.status, exc.detail, code=exc.code, title=exc.title,
                       headers=exc.headers, **exc.extra)

    @app.exception_handler(BodyRefused)
    async def _body_refused(request: Request, exc: BodyRefused) -> JSONResponse:
        return await _telemetra_error(request, exc.error)

    @app.exception_handler(RequestValidationError)
    async def _request_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        summary = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5])
        return problem(422, summary or "invalid request", errors=errors)

    @app.exception_handler(ValidationError)
    async def _model_validation(request: Request, exc: ValidationError) -> JSONResponse:
        # A body validated by hand in an endpoint (e.g. login's JSON-or-form body).
        errors = [{"loc": ["body", *map(str, e.get("loc", ()))], "msg": e.get("msg", "invalid")}
                  for e in exc.errors()]
        summary = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5])
        return problem(422, summary or "invalid body", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such resource: {request.url.path}"
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            # Starlette names only the methods of the first route matching the path, while
            # e.g. GET and POST /users are two routes: Allow must list what the path serves.
            headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
        return problem(exc.status_code, detail, headers=headers)

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        # A unique or foreign-key violation that no service check caught first.
        conflict = Conflict("conflicts with an existing resource")
        return problem(conflict.status, conflict.detail, code=conflict.code)

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError) -> JSONResponse:
        # SQLite's driver cannot bind an integer beyond 64 bits (e.g. a huge id in the path).
        return _unstorable_input()

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    @app.exception_handler(OSError)
    async def _database_down(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, DBAPIError) and is_query_timeout(exc):
            seconds = request.app.state.settings.query_timeout_seconds
            log.warning("query stopped by its time limit (%s s) on %s %s", seconds,
                        request.method, request.url.path)
            timeout = QueryTimeout(f"the query took longer than the {seconds:g} s limit: "
                                   "narrow the time range, select fewer sensors or widen "
                                   "the interval")
            return problem(timeout.status, timeout.detail, code=timeout.code,
                           title=timeout.title)
        if isinstance(exc, DBAPIError) and _is_unstorable_input(exc):
            log.info("request value refused by the database: %s", exc.orig)
            return _unstorable_input()
        log.warning("database unavailable: %s", type(exc).__name__)
        unavailable = Unavailable("the database is unavailable, try again shortly")
        return problem(unavailable.status, unavailable.detail, code=unavailable.code,
                       headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "an unexpected error occurred; it has been logged",
                       code="internal_error")
