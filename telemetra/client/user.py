"""``UserClient``: a person's (or a script's) access to Telemetra's API with a login."""

import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx

from telemetra.client import wire
from telemetra.client.errors import ApiError, ClientError, Unreachable
from telemetra.client.models import (
    AggregateRow,
    Command,
    DeviceCredentials,
    Reading,
    TimeLike,
    TokenPair,
    query_time,
)
from telemetra.client.retry import Backoff

# Refresh this long before the access token runs out, so a request never carries a token
# that expires on the way.
REFRESH_MARGIN_SECONDS = 30


def reading_filters(*, device_id: int | None = None, sensor_id: int | None = None,
                    site_id: int | None = None, keys: Iterable[str] | str | None = None,
                    start: TimeLike | None = None, end: TimeLike | None = None,
                    status: str | None = None, include_invalid: bool = False
                    ) -> dict[str, Any]:
    """The query parameters the readings endpoints share."""
    params: dict[str, Any] = {"device_id": device_id, "sensor_id": sensor_id,
                              "site_id": site_id, "status": status}
    if keys is not None:
        params["keys"] = keys if isinstance(keys, str) else ",".join(keys)
    if start is not None:
        params["start"] = query_time(start)
    if end is not None:
        params["end"] = query_time(end)
    if include_invalid:
        params["include_invalid"] = "true"
    return {name: value for name, value in params.items() if value is not None}


class UserClient:
    """Log in, then query. The access token is refreshed before it expires (and once more on
    a 401), rotating the refresh token each time as the platform requires: a spent refresh
    token is never sent again, even by several threads sharing the client.

    ::

        from telemetra.client import UserClient

        with UserClient("http://127.0.0.1:8000") as api:
            api.login("alice", "correct horse battery")
            for reading in api.readings(device_id=7, keys=["temperature"], start="-1h"):
                print(reading.ts, reading.value)
            latest = api.latest(device_id=7)
            hourly = api.aggregate("1h", fn=["avg", "max"], device_id=7, start="-1d")
            api.export("week.csv", device_id=7, start="-7d", end="now")

    Failures are ``ApiError`` (with the platform's ``code`` and ``detail``) or
    ``Unreachable``; a 429, 502, 503 or 504 on a read is retried with ``backoff``.
    """

    def __init__(self, base_url: str, *, timeout: float = 30.0,
                 backoff: Backoff = Backoff(attempts=4), http: httpx.Client | None = None
                 ) -> None:
        self.base = wire.api_base(base_url)
        self.backoff = backoff
        self._own = http is None
        self._http = http or httpx.Client(timeout=timeout)
        self._tokens: TokenPair | None = None
        self._expires_at = 0.0
        self._refreshing = threading.Lock()

    # -- session ----------------------------------------------------------------------------

    @property
    def tokens(self) -> TokenPair | None:
        return self._tokens

    def _store(self, data: dict) -> TokenPair:
        self._tokens = TokenPair(data["access_token"], data["refresh_token"],
                                 data["expires_in"], data.get("token_type", "bearer"))
        self._expires_at = time.monotonic() + data["expires_in"]
        return self._tokens

    def login(self, username: str, password: str) -> TokenPair:
        """Log in with a username or an email address."""
        response = wire.request(self._http, "POST", self.base + "/auth/login",
                                json={"username": username, "password": password})
        return self._store(response.json())

    def refresh(self, spent: TokenPair | None = None) -> TokenPair:
        """A new token pair for the refresh token (which is spent by this). With ``spent``,
        only if the pair is still that one: another thread may have refreshed already."""
        with self._refreshing:
            current = self._tokens
            if current is None:
                raise ClientError("not logged in")
            if spent is not None and current is not spent:
                return current
            response = wire.request(self._http, "POST", self.base + "/auth/refresh",
                                    json={"refresh_token": current.refresh_token})
            return self._store(response.json())

    def logout(self) -> None:
        """End this session on the platform (its access and refresh tokens)."""
        if self._tokens is None:
            return
        try:
            self._call("POST", "/auth/logout",
                       json={"refresh_token": self._tokens.refresh_token})
        finally:
            self._tokens = None

    def access_token(self) -> str:
        """A valid access token (refreshed first if it is about to expire), for what the client
        does not wrap, such as the WebSocket: ``ws://host/ws?token=...``."""
        return self._token().access_token

    def _token(self) -> TokenPair:
        tokens = self._tokens
        if tokens is None:
            raise ClientError("not logged in: call login() first")
        if time.monotonic() > self._expires_at - REFRESH_MARGIN_SECONDS:
            tokens = self.refresh(spent=tokens)
        return tokens

    def _call(self, method: str, path: str, **kwargs) -> httpx.Response:
        tokens = self._token()
        try:
            return wire.request(self._http, method, self.base + path,
                                headers={"Authorization": f"Bearer {tokens.access_token}"},
                                **kwargs)
        except ApiError as exc:
            if exc.status != 401:
                raise
        tokens = self.refresh(spent=tokens)  # revoked early or expired: once more, fresh
        return wire.request(self._http, method, self.base + path,
                            headers={"Authorization": f"Bearer {tokens.access_token}"},
                            **kwargs)

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        """Any API call (``path`` below ``/api/v1``) with this session; GETs are retried on
        429/5xx. For what this class has no method for:

        >>> api.request("GET", "/sites").json()["items"]
        """
        if method.upper() == "GET":
            return self.backoff.run(lambda: self._call(method, path, **kwargs), what=path)
        return self._call(method, path, **kwargs)

    def me(self) -> dict[str, Any]:
        return self.request("GET", "/auth/me").json()

    # -- devices and commands ---------------------------------------------------------------

    def create_device(self, name: str, **fields: Any) -> DeviceCredentials:
        """Register a device (``device_type``, ``site_id``, ``location``, ``metadata``, ...);
        its key is in the answer, this once."""
        data = self.request("POST", "/devices", json={"name": name, **fields}).json()
        return DeviceCredentials(data["id"], data["name"], data["api_key"])

    def rotate_key(self, device_id: int) -> DeviceCredentials:
        """A new key for the device; the old one stops working."""
        data = self.request("POST", f"/devices/{device_id}/rotate-key").json()
        return DeviceCredentials(data["id"], data["name"], data["api_key"])

    def devices(self, **filters: Any) -> list[dict[str, Any]]:
        """Devices of the organization (filters as ``GET /devices``: ``q``, ``site_id``,
        ``status``, ...), every page."""
        found: list[dict[str, Any]] = []
        while True:
            page = self.request("GET", "/devices",
                                params={**filters, "limit": 1000, "offset": len(found)}).json()
            found += page["items"]
            if not page["items"] or len(found) >= page["total"]:
                return found

    def send_command(self, device_id: int, name: str, params: dict[str, Any] | None = None,
                     ttl_seconds: int | None = None) -> Command:
        body: dict[str, Any] = {"name": name}
        if params is not None:
            body["params"] = params
        if ttl_seconds is not None:
            body["ttl_seconds"] = ttl_seconds
        return Command.from_json(self.request("POST", f"/devices/{device_id}/commands",
                                              json=body).json())

    def command(self, device_id: int, command_id: int) -> Command:
        return Command.from_json(
            self.request("GET", f"/devices/{device_id}/commands/{command_id}").json())

    # -- readings ---------------------------------------------------------------------------

    def readings(self, *, order: str = "asc", page_size: int = 1000, limit: int | None = None,
                 **filters: Any) -> Iterator[Reading]:
        """Readings matching the filters (``device_id``, ``sensor_id``, ``site_id``, ``keys``,
        ``start``, ``end``, ``status``, ``include_invalid``), oldest first unless
        ``order="desc"``, fetched page by page as the iteration goes (at most ``limit``).
        Times are datetimes, epoch seconds, or the API's strings (``-1h``, ``now``)."""
        params = {**reading_filters(**filters), "order": order}
        cursor: str | None = None
        given = 0
        while True:
            size = page_size if limit is None else min(page_size, limit - given)
            if size <= 0:
                return
            page = self.request("GET", "/readings", params={
                **params, "limit": size, **({"cursor": cursor} if cursor else {})}).json()
            for item in page["items"]:
                yield Reading.from_json(item)
            given += len(page["items"])
            cursor = page["next_cursor"]
            if not cursor:
                return

    def latest(self, **filters: Any) -> list[Reading]:
        """The latest reading of each sensor of a ``device_id``, ``site_id`` or
        ``sensor_id`` (optionally only ``keys``)."""
        params = reading_filters(**filters)
        found: list[Reading] = []
        cursor: str | None = None
        while True:
            page = self.request("GET", "/readings/latest", params={
                **params, "limit": 1000, **({"cursor": cursor} if cursor else {})}).json()
            found += [Reading.from_json(item) for item in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                return found

    def aggregate(self, interval: str, *, fn: str | Iterable[str] = "avg", tz: str = "UTC",
                  **filters: Any) -> list[AggregateRow]:
        """Buckets of ``interval`` (``1m``, ``1h``, ``1d``, ``1mo``, ...) per sensor, with the
        functions ``fn`` (avg, min, max, sum, count, first, last) set on each row.

        >>> rows = api.aggregate("1h", fn=["min", "max"], device_id=7, start="-1d")
        >>> [(row.bucket, row.min, row.max) for row in rows if row.key == "temperature"]
        """
        params = {**reading_filters(**filters), "interval": interval, "tz": tz,
                  "fn": fn if isinstance(fn, str) else ",".join(fn)}
        data = self.request("GET", "/readings/aggregate", params=params).json()
        return [AggregateRow.from_json(item) for item in data["items"]]

    def export(self, path: str | Path, *, format: str = "csv", **filters: Any) -> int:
        """Stream the readings matching the filters (a device or sensor and a time range) to
        ``path`` as CSV (with a header row) or NDJSON; returns the bytes written. The file is
        complete or absent: it is written beside ``path`` and renamed at the end."""
        target = Path(path)
        partial = target.with_name(target.name + ".part")
        params = {**reading_filters(**filters), "format": format}
        tokens = self._token()
        written = 0
        try:
            with self._http.stream("GET", self.base + "/readings/export", params=params,
                                   headers={"Authorization": f"Bearer {tokens.access_token}"}
                                   ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise wire.error(response)
                with partial.open("wb") as handle:
                    for chunk in response.iter_bytes():
                        handle.write(chunk)
                        written += len(chunk)
        except httpx.TransportError as exc:
            partial.unlink(missing_ok=True)
            raise Unreachable(f"export: {type(exc).__name__}: {exc}") from exc
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(target)
        return written

    def close(self) -> None:
        if self._own:
            self._http.close()

    def __enter__(self) -> "UserClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
