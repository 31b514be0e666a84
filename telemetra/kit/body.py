"""Bounded request bodies (API.md, "Bounded input").

``BodyLimitMiddleware`` (pure ASGI) watches every body as the endpoint reads it: a declared
``Content-Length`` over the route's limit is a 413 before a byte is read, a body that grows
past it (chunked) a 413 as soon as it does, and a JSON body nested deeper than
``MAX_JSON_DEPTH`` a 422 before anything parses it (the standard parser, pydantic and the
JSON encoders all recurse: a 1,000-deep body was a RecursionError, a 500). The limit is the
endpoint's, declared where the route is (``@body_limit(INGEST)``, like ``kit.db.writes``);
routes that declare nothing get the small default, ``TELEMETRA_MAX_REQUEST_BYTES``.

The refusals are raised from ``receive()``, inside the endpoint: as ``BodyRefused``, an
``HTTPException``, because FastAPI passes those on while it turns anything else raised while
reading a body into a 400.
"""

from collections.abc import Callable
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from telemetra.kit.errors import Invalid, PayloadTooLarge, TelemetraError

MAX_JSON_DEPTH = 32

# What an endpoint may declare with ``body_limit``; anything else gets the default.
INGEST = "ingest"  # TELEMETRA_MAX_BODY_BYTES
STREAM = "stream"  # no limit: read as it arrives, never held whole (imports)

# Form bodies hold strings only: their brackets are text, not nesting.
_FORM_TYPES = (b"application/x-www-form-urlencoded", b"multipart/form-data")
_NOT_SKELETON = bytes(b for b in range(256) if b not in b'"[]{}')
_TO_PARENS = bytes.maketrans(b"[]{}", b"()()")


def body_limit(kind: str) -> Callable:
    """Declare the body limit of an endpoint: ``INGEST`` or ``STREAM``."""
    if kind not in (INGEST, STREAM):
        raise ValueError(f"unknown body limit {kind!r}")

    def mark(endpoint: Callable) -> Callable:
        endpoint.telemetra_body_limit = kind
        return endpoint

    return mark


def too_deep(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text ``raw`` nests arrays and objects deeper than ``limit``, decided on
    the bytes without parsing them (so it is safe on any input, and fast: bytes methods only,
    no Python loop over characters).

    Exact for valid JSON; for invalid JSON it may answer either way (the parser refuses it).
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:  # the common case: nothing to count
        return False
    if b"\\" in raw:
        # Escaped backslashes, then escaped quotes, go: every quote left delimits a string.
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    # Keep quotes and brackets; two adjacent quotes enclose no bracket, so dropping them
    # leaves every bracket inside or outside a string as it was.
    skeleton = raw.translate(_TO_PARENS, _NOT_SKELETON).replace(b'""', b"")
    if b'"' in skeleton:  # strings holding brackets: drop them with their brackets
        skeleton = b"".join(skeleton.split(b'"')[0::2])
    # Each pass removes the innermost level of every bracket tree.
    for _ in range(limit):
        if not skeleton:
            return False
        shorter = skeleton.replace(b"()", b"")
        if len(shorter) == len(skeleton):  # unbalanced: not JSON
            return True
        skeleton = shorter
    return bool(skeleton)


def depth_error(loc: list[str | int] | None = None) -> Invalid:
    detail = f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels"
    return Invalid(detail, loc=loc or ["body"])


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the body is larger than {limit} bytes, this route's limit",
                           limit=limit)


class BodyRefused(HTTPException):
    """A refusal raised from ``receive()``; rendered as the ``TelemetraError`` it carries."""

    def __init__(self, error: TelemetraError) -> None:
        super().__init__(error.status, error.detail)
        self.error = error


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, default_limit: int, ingest_limit: int) -> None:
        self.app = app
        self.limits = {None: default_limit, INGEST: ingest_limit, STREAM: None}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if b"%00" in scope.get("query_string", b""):
            name = _nul_parameter(scope["query_string"])
            if name is not None:
                from telemetra.kit.problems import problem  # problems imports this module

                detail = f"query parameter {name} must not contain a NUL character"
                response = problem(422, detail, errors=[{"loc": ["query", name],
                                                         "msg": detail}])
                await response(scope, receive, send)
                return
        await self.app(scope, _Guard(scope, receive, self.limits).receive, send)


def _nul_parameter(query_string: bytes) -> str | None:
    """The first query parameter holding a NUL (PostgreSQL cannot compare text with one,
    SQLite can: one rule for both, before either sees it)."""
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return name.replace("\x00", "\\0")
    return None


class _Guard:
    """The ``receive`` the app sees. Set up on its first call: by then routing has chosen the
    endpoint, and no byte of the body has been read."""

    __slots__ = ("scope", "upstream", "limits", "ready", "limit", "size", "check_depth",
                 "chunks")

    def __init__(self, scope: Scope, upstream: Receive, limits: dict) -> None:
        self.scope, self.upstream, self.limits = scope, upstream, limits
        self.ready, self.size, self.chunks = False, 0, []

    def _start(self) -> None:
        self.ready = True
        kind = getattr(self.scope.get("endpoint"), "telemetra_body_limit", None)
        self.limit = self.limits.get(kind, self.limits[None])
        content_type, declared = b"", None
        for name, value in self.scope["headers"]:
            if name == b"content-type":
                content_type = value.split(b";")[0].strip().lower()
            elif name == b"content-length":
                declared = value
        # Streamed bodies are checked where they are decoded (line by line, for imports).
        self.check_depth = self.limit is not None and content_type not in _FORM_TYPES
        if self.limit is not None and declared is not None and declared.isdigit() \
                and int(declared) > self.limit:
            raise BodyRefused(too_large(self.limit))

    async def receive(self) -> Message:
        if not self.ready:
            self._start()
        message = await self.upstream()
        if message["type"] != "http.request" or self.limit is None:
            return message
        body = message.get("body", b"")
        self.size += len(body)
        if self.size > self.limit:
            self.chunks = []
            raise BodyRefused(too_large(self.limit))
        if self.check_depth:
            if message.get("more_body", False):
                self.chunks.append(body)  # the bytes the app keeps anyway, not a copy
            else:
                whole = b"".join((*self.chunks, body)) if self.chunks else body
                self.chunks = []
                if too_deep(whole):
                    raise BodyRefused(depth_error())
        return message
