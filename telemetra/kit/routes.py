"""The app's endpoints as a flat list, whatever the FastAPI version nests them as; and the
query parameters each one takes, so that an unknown one is refused (API.md, "Strict input")."""

from collections.abc import Iterable
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from pydantic import AliasChoices, BaseModel
from starlette.requests import HTTPConnection


def leaf_routes(app: FastAPI) -> Iterable[Any]:
    """Every route with its full ``path_format``, ``methods`` and ``dependant``.

    Recent FastAPI keeps included routers nested (``_IncludedRouter``) and walks them with
    ``iter_route_contexts``; a context's ``original_route`` is the route as declared (the
    ``scope["route"]`` of a request). Older FastAPI copies the routes into ``app.routes``.
    """
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # pragma: no cover - older FastAPI
        return app.routes
    return iter_route_contexts(app.routes)


def _field_names(field: Any) -> set[str]:
    """The names a query field is sent under: its alias, its validation aliases, or, for a
    query parameter that is a Pydantic model, the names of the model's fields."""
    info = field.field_info
    annotation = info.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {model_field.alias or name for name, model_field in annotation.model_fields.items()}
    names = {field.alias}
    choices = info.validation_alias
    if isinstance(choices, str):
        names.add(choices)
    elif isinstance(choices, AliasChoices):
        names.update(choice for choice in choices.choices if isinstance(choice, str))
    return names


def query_names(dependant: Dependant) -> frozenset[str]:
    """Every query parameter ``dependant`` and its sub-dependencies declare (``skip`` of the
    pagination beside ``offset``, a filter's ``alias``...)."""
    names: set[str] = set()
    pending, seen = [dependant], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        for field in current.query_params:
            names |= _field_names(field)
        pending.extend(current.dependencies)
    return frozenset(names)


_DECLARED: dict[int, tuple[Any, frozenset[str]]] = {}  # id(route) -> (route, its names)


def _declared(route: Any) -> frozenset[str] | None:
    entry = _DECLARED.get(id(route))
    if entry is None or entry[0] is not route:
        dependant = getattr(route, "dependant", None)
        if not isinstance(dependant, Dependant):
            return None
        entry = _DECLARED[id(route)] = (route, query_names(dependant))
    return entry[1]


def refuse_unknown_query(connection: HTTPConnection) -> None:
    """A dependency: a query parameter the matched route does not declare is a 422 naming it
    (``loc: ["query", name]``), never silently ignored: a misspelt filter (``unit_id`` for
    ``site_id``) must not mean "everything", least of all on a DELETE.

    Checked before the route's other dependencies, credentials included: what a route takes
    is public in its OpenAPI schema. WebSockets are left to their handlers (``?token=``), which
    answer on the socket, not with a problem."""
    if connection.scope["type"] != "http" or not connection.scope.get("query_string"):
        return
    declared = _declared(connection.scope.get("route"))
    if declared is None:
        return
    unknown = [name for name in dict.fromkeys(connection.query_params) if name not in declared]
    if not unknown:
        return
    takes = (f"this route takes {', '.join(sorted(declared))}" if declared
             else "this route takes no query parameters")
    raise RequestValidationError([
        {"type": "extra_forbidden", "loc": ("query", name),
         "msg": f"unknown query parameter; {takes}", "input": connection.query_params[name]}
        for name in unknown])


StrictQuery = Depends(refuse_unknown_query)
