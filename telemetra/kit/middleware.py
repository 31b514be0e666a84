"""Pure ASGI middleware: request ids and security headers on every response."""

import itertools
import os
import re
from contextvars import ContextVar

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Unique without a system call per request: a random per-process prefix and a counter.
_ID_PREFIX = os.urandom(6).hex()
_id_counter = itertools.count(1)
_request_id: ContextVar[str | None] = ContextVar("telemetra_request_id", default=None)

# Same-origin everything (the API, /docs and /redoc from local assets, the web UI at /):
# no script from elsewhere or inline (a page with one sends its own policy, with the script's
# hash: telemetra.system.docs), styles inline too (Swagger UI and ReDoc set them), images
# as data: URLs, sockets to this origin ('self' covers ws: and wss: there), no framing.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; "
                           "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                           "font-src 'self' data:; connect-src 'self'; object-src 'none'; "
                           "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "content-security-policy": CONTENT_SECURITY_POLICY,
}
# Production, over HTTPS only (a browser ignores it over HTTP; sending it on a development
# server's plain HTTP would only mislead).
STRICT_TRANSPORT_SECURITY = "max-age=31536000; includeSubDomains"


def current_request_id() -> str | None:
    """The id of the request being handled (what the logs carry), or None outside one."""
    return _request_id.get()


class RequestIdMiddleware:
    """Echo a sane client ``X-Request-ID`` or make one; add security headers (HSTS too when
    ``hsts`` and the request came over HTTPS, directly or as a trusted proxy said)."""

    def __init__(self, app: ASGIApp, hsts: bool = False) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _SAFE_REQUEST_ID.match(candidate):
                    request_id = candidate
                break
        request_id = request_id or f"{_ID_PREFIX}{next(_id_counter):010x}"
        scope.setdefault("state", {})["request_id"] = request_id
        hsts = self.hsts and scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["x-request-id"] = request_id
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if hsts:
                    headers.setdefault("strict-transport-security", STRICT_TRANSPORT_SECURITY)
            await send(message)

        token = _request_id.set(request_id)
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            _request_id.reset(token)
