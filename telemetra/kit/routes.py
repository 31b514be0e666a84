"""The app's endpoints as a flat list, whatever the FastAPI version nests them as."""

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI


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
