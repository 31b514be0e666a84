"""The most frequent request of the platform, a device posting readings with its key, taken
before FastAPI's routing and dependency solving (which cost more than the ingestion itself).

Only the plain case is taken here: ``POST /api/v1/readings`` or
``POST /api/v1/devices/{its id}/readings``, no query string, a device key that verifies (from
the cache, or one indexed query on a miss: in a fleet most devices are seldom seen by one
process, and the whole route costs several times the query), a body within the limit that
decodes. Everything else, and any failure before the write, goes on to the normal route
with the body replayed, so every answer but the fast one (401, 403, 404, 413, 422, 503 while
the database is down...) comes from one place. The routes themselves stay, and document the
endpoints in OpenAPI.
"""

import re

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from telemetra.auth.dependencies import DEVICE_KEY_PREFIX, verified_device
from telemetra.ingest.decode import parse_json
from telemetra.ingest.ingest import OverDailyQuota, Target
from telemetra.kit.body import too_deep
from telemetra.kit.errors import RateLimited, TelemetraError, Unavailable
from telemetra.kit.problems import problem
from telemetra.system.metrics import INGESTED

THROTTLED = "telemetra.throttled"  # a scope key: the device key's rate limit was counted
_ACCEPTED_HEADERS = [(b"content-type", b"application/json")]


class DeviceIngestFastPath:
    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.readings_path = f"{prefix}/readings"
        self.device_template = f"{prefix}/devices/{{device_id}}/readings"  # for the metrics
        self.device_path = re.compile(rf"^{re.escape(prefix)}/devices/(\d{{1,12}})/readings$")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["query_string"]:
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path == self.readings_path:
            named = None
        elif (match := self.device_path.match(path)) is not None:
            named = int(match.group(1))
        else:
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        key = _device_key(scope)
        device = None
        if key:
            try:
                device = await verified_device(state.ingestor.lookups, state.device_keys,
                                                key)
            except Exception:  # the database is unreachable: the route answers (503)
                device = None
        if device is None or (named is not None and named != device.id):
            await self.app(scope, receive, send)
            return
        target = Target(device.id, device.organization_id)
        if state.mqtt is not None:  # a device without a broker login gets one
            state.mqtt.device_key_seen(device.id, key)
        try:
            await state.ingestor.throttle(target)  # in memory: a few dict operations
        except RateLimited as limited:
            await _problem(limited, scope, receive, send)
            return
        scope[THROTTLED] = True  # should the route answer, it does not count this again
        chunks, size, more = [], 0, True
        limit = state.settings.max_body_bytes
        while more and size <= limit:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        if more or size > limit or too_deep(raw):  # the route answers 413 or 422
            await self.app(scope, _replay([raw], more, receive), send)
            return
        try:
            body = parse_json(raw)
            result = await state.ingestor.ingest(target, body)
        except (Unavailable, OverDailyQuota) as refused:  # the write may still land: never
            await _problem(refused, scope, receive, send)  # twice; a refusal counted once
            return
        except Exception:  # nothing was written: the normal route answers, the same way
            await self.app(scope, _replay([raw], False, receive), send)
            return
        INGESTED["fastpath"].inc(result["accepted"])
        state.presence.mark(device.id)  # contact, as any MQTT uplink is
        scope["route_template"] = self.readings_path if named is None else self.device_template
        answer = orjson.dumps(result)
        await send({"type": "http.response.start", "status": 202,
                    "headers": [*_ACCEPTED_HEADERS,
                                (b"content-length", str(len(answer)).encode())]})
        await send({"type": "http.response.body", "body": answer})


async def _problem(error: TelemetraError, scope: Scope, receive: Receive, send: Send) -> None:
    response = problem(error.status, error.detail, code=error.code, title=error.title,
                       headers=error.headers, **error.extra)
    await response(scope, receive, send)


def _device_key(scope: Scope) -> str | None:
    """The device key as the auth dependency reads it: ``X-API-Key`` first, else a Bearer
    token that is a device key."""
    bearer = None
    for name, value in scope["headers"]:
        if name == b"x-api-key":
            return value.decode("latin-1")
        if name == b"authorization":
            scheme, _, param = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                bearer = param
    return bearer if bearer and bearer.startswith(DEVICE_KEY_PREFIX) else None


def _replay(chunks: list[bytes], more: bool, receive: Receive) -> Receive:
    """A ``receive`` that gives back what was read, then the rest of the body."""
    pending = [b"".join(chunks)]

    async def replayed() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": more}
        return await receive()

    return replayed
