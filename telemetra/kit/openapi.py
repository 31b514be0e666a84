"""Document the problem+json error answers in OpenAPI, for every route, in one place.

Every error leaves the app as ``application/problem+json`` (see ``kit.problems``), so the
schema says so: a ``Problem`` component, and on each operation the error statuses it can
answer with, derived from the operation itself rather than repeated on every endpoint:

- 401 and 403 where the operation declares security (a token or a device key);
- 404 where the path names an object, or a write names one in its query (``device_id``);
- 409 on writes that touch the database (a duplicate, or a state that forbids the change);
- 422 on every operation: an unknown query parameter is one (``kit.routes``), besides
  invalid parameters or body (FastAPI's own ``HTTPValidationError`` is replaced: it
  describes a body this app never sends), and 400 where it takes a body (one that cannot
  even be decoded, e.g. not UTF-8);
- 503 where the operation touches the database (it may be down; ``Retry-After`` says when).

An endpoint documents its own extra statuses as usual (``responses={409: {"description":
...}}``); any 4xx/5xx that names no schema of its own gets the ``Problem`` one here.
"""

import json
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant

from telemetra.kit.db import get_conn
from telemetra.kit.problems import PROBLEM_JSON
from telemetra.kit.routes import leaf_routes

PROBLEM_REF = "#/components/schemas/Problem"

PROBLEM_SCHEMAS: dict[str, Any] = {
    "Problem": {
        "title": "Problem",
        "type": "object",
        "description": "An error, as RFC 9457 problem details with a stable `code`.",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": {"type": "string", "description": "A URI naming the problem type",
                     "examples": ["about:blank"]},
            "title": {"type": "string", "description": "Short summary of the status"},
            "status": {"type": "integer", "description": "The HTTP status code"},
            "detail": {"type": "string", "description": "What went wrong, for a human"},
            "code": {"type": "string",
                     "description": "Stable machine-readable code: `not_found`, `conflict`, "
                                    "`validation_error`, `unauthorized`, `forbidden`, "
                                    "`quota_exceeded`, `rate_limited`, `unavailable`, ..."},
            "errors": {"type": "array", "items": {"$ref": "#/components/schemas/ProblemError"},
                       "description": "For validation errors: each invalid input"},
        },
        "additionalProperties": True,
    },
    "ProblemError": {
        "title": "ProblemError",
        "type": "object",
        "required": ["loc", "msg"],
        "properties": {
            "loc": {"type": "array", "items": {"anyOf": [{"type": "string"},
                                                         {"type": "integer"}]},
                    "description": 'Where: e.g. `["body", "name"]` or `["query", "limit"]`'},
            "msg": {"type": "string"},
        },
    },
}

_DESCRIPTIONS = {
    400: "The body could not be decoded",
    401: "Not authenticated: no credentials, or an invalid, expired or revoked token or key",
    403: "Authenticated, but not allowed to do this",
    404: "No such object in the caller's organization",
    409: "Conflicts with an existing object or with the object's state",
    413: "The body is too large",
    415: "Unsupported body media type",
    422: "The request is invalid; `errors` lists each invalid input",
    429: "Too many requests; retry after `Retry-After` seconds",
    503: "The database is unavailable; retry after `Retry-After` seconds",
}
_HEADERS = {
    401: {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "string"}}},
    503: {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "string"}}},
}
_WRITES = {"post", "put", "patch", "delete"}
_FASTAPI_VALIDATION = "#/components/schemas/HTTPValidationError"


def _depends_on(dependant: Dependant, call) -> bool:
    return any(dep.call is call or _depends_on(dep, call) for dep in dependant.dependencies)


def _database_operations(app: FastAPI) -> set[tuple[str, str]]:
    """(path, method) of every operation whose dependencies open a database transaction."""
    found = set()
    for route in leaf_routes(app):
        dependant = getattr(route, "dependant", None)
        if isinstance(dependant, Dependant) and _depends_on(dependant, get_conn):
            found.update((route.path_format, method.lower()) for method in route.methods or ())
    return found


def _error_statuses(path: str, method: str, operation: dict, uses_db: bool) -> set[int]:
    statuses = set()
    if operation.get("security"):
        statuses |= {401, 403}
    parameters = operation.get("parameters", [])
    if any(p.get("in") == "path" or (p.get("in") == "query" and p.get("name", "").endswith("_id")
                                     and method in _WRITES) for p in parameters):
        statuses.add(404)
    if uses_db and method in _WRITES:
        statuses.add(409)
    statuses.add(422)  # an unknown query parameter, on any operation (API.md, Strict input)
    if "requestBody" in operation:
        statuses.add(400)
    if uses_db:
        statuses.add(503)
    return statuses


def _is_problem_slot(response: dict) -> bool:
    """A declared error response without a schema of its own (or with FastAPI's 422 one)."""
    content = response.get("content")
    if not content:
        return True
    schemas = [media.get("schema") or {} for media in content.values()]
    return all(not schema or schema.get("$ref") == _FASTAPI_VALIDATION for schema in schemas)


def add_problem_responses(schema: dict, database_operations: set[tuple[str, str]]) -> dict:
    """Add the ``Problem`` component and each operation's error responses to ``schema``."""
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            uses_db = (path, method) in database_operations
            for status in _error_statuses(path, method, operation, uses_db):
                responses.setdefault(str(status), {})
            for key, response in responses.items():
                if not key.isdigit() or int(key) < 400 or not _is_problem_slot(response):
                    continue
                status = int(key)
                if not response.get("description") or response["description"] == "Validation Error":
                    response["description"] = _DESCRIPTIONS.get(status, "Error")
                response["content"] = {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}
                if status in _HEADERS:
                    response.setdefault("headers", _HEADERS[status])
            operation["responses"] = dict(sorted(responses.items()))
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(PROBLEM_SCHEMAS)
    for unused in ("HTTPValidationError", "ValidationError"):  # in this order: one uses the other
        if f'"#/components/schemas/{unused}"' not in json.dumps(schema):
            components.pop(unused, None)
    schema["components"]["schemas"] = dict(sorted(components.items()))
    return schema


def install_problem_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and ``/openapi.json``) document the problem+json errors."""
    generate = app.openapi  # FastAPI's: cached, regenerated when routes change

    def openapi() -> dict:
        schema = generate()
        if "Problem" not in schema.get("components", {}).get("schemas", {}):  # a fresh one
            add_problem_responses(schema, _database_operations(app))
        return schema

    app.openapi = openapi
