"""http_pull connectors: fetch an upstream's readings and store them through the ingestor.

Each process runs ``Puller.run_due`` every second: it claims the connectors whose pull is due
under a lease in the database (a conditional UPDATE: a connector leased by one process is not
due for another, so two processes never pull one connector at once), pulls them, and records
the outcome, releasing the lease and scheduling the next pull one interval after this one
began. ``POST /connectors/{id}/run`` takes the same lease (waiting a little for a scheduled
pull that holds it). A process killed mid-pull leaves its lease to expire.

A pull fetches ``url`` (``{since}`` and ``{since_epoch}`` replaced by the time of the newest
reading the connector stored) with the connector's headers, within ``timeout_seconds`` in
all, and hands the JSON answer to ``Ingestor`` with the connector's ``Source``. An upstream
that cannot be reached, is too slow, answers anything but a 2xx, or answers something that is
not JSON or not an ingestion body is a ``PullFailed``: nothing is stored, and the connector
shows it as ``last_error``. Redirects are not followed (a redirect could lead anywhere,
``TELEMETRA_CONNECTOR_ALLOWED_HOSTS`` notwithstanding).
"""

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import orjson
from sqlalchemy import and_, case, or_, select, update
from sqlalchemy.engine import Row as DbRow
from sqlalchemy.ext.asyncio import AsyncEngine

from telemetra.connectors.schemas import ConnectorKind
from telemetra.connectors.service import get_connector, host_allowed
from telemetra.db.tables import connectors
from telemetra.ingest.ingest import Ingestor, NothingStored, OverDailyQuota, Source
from telemetra.kit.crypto import SecretBox
from telemetra.kit.db import write_transaction
from telemetra.kit.errors import BadGateway, Conflict, Invalid, NotFound
from telemetra.kit.outbound import outbound_client
from telemetra.kit.timeutil import utcnow
from telemetra.readings.flags import is_valid
from telemetra.system.metrics import INGESTED

log = logging.getLogger("telemetra.connectors")

CLAIM_ROWS = 20
# Beyond its timeout, how long a pull may take storing what it fetched before its lease
# lapses and another process may pull the connector again.
LEASE_MARGIN = timedelta(seconds=120)
RUN_WAIT_SECONDS = 15.0  # how long a manual run waits for a scheduled pull to finish
MAX_ERROR_CHARS = 500
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # ``{since}`` before the first reading is stored

_COLUMNS = (connectors.c.id, connectors.c.organization_id, connectors.c.name,
            connectors.c.device_id, connectors.c.url, connectors.c.key, connectors.c.format,
            connectors.c.byte_order, connectors.c.max_age_seconds, connectors.c.headers,
            connectors.c.timeout_seconds, connectors.c.interval_seconds,
            connectors.c.newest_reading_at, connectors.c.lease_until)


class PullFailed(Exception):
    """The pull stored nothing; ``str()`` says why, in the upstream's terms."""


class DeviceRefused(PullFailed):
    """Nothing was fetched: the connector's device takes no readings now (inactive)."""


@dataclass(frozen=True, slots=True)
class Pulled:
    """What one pull did, as ``RunResult``, and the newest reading time it wrote."""

    fetched: int
    stored: int
    duplicates: int
    invalid: int
    rejected: list[dict]
    newest: datetime | None

    def answer(self) -> dict:
        return {"fetched": self.fetched, "stored": self.stored,
                "duplicates": self.duplicates, "invalid": self.invalid,
                "rejected": self.rejected}


def expand_url(url: str, since: datetime | None) -> str:
    """``url`` with ``{since}`` (ISO 8601 UTC) and ``{since_epoch}`` (seconds, with
    fractions when the time has them) filled in; other braces are left as they are."""
    since = since or EPOCH
    iso = since.astimezone(UTC).isoformat().replace("+00:00", "Z")
    epoch = since.timestamp()
    epoch_text = str(int(epoch)) if epoch == int(epoch) else repr(epoch)
    return url.replace("{since}", iso).replace("{since_epoch}", epoch_text)


def _due(now: datetime):
    c = connectors.c
    return and_(c.kind == ConnectorKind.http_pull.value, c.enabled,
                or_(c.next_run_at.is_(None), c.next_run_at <= now),
                or_(c.lease_until.is_(None), c.lease_until < now))


def _free(now: datetime):
    c = connectors.c
    return or_(c.lease_until.is_(None), c.lease_until < now)


def _lease_for(row_timeout: float | None) -> timedelta:
    return timedelta(seconds=row_timeout or 10) + LEASE_MARGIN


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Puller:
    """Pulls http_pull connectors; ``run_due`` is the job, ``run`` the manual run."""

    def __init__(self, engine: AsyncEngine, ingestor: Ingestor, box: SecretBox, *,
                 allowed_hosts: list[str], max_body_bytes: int) -> None:
        self.engine, self.ingestor, self.box = engine, ingestor, box
        self.allowed_hosts = allowed_hosts
        self.max_body_bytes = max_body_bytes
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._client = outbound_client()

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def run_due(self) -> int:
        """Claim and pull the connectors that are due; how many were pulled (whatever their
        outcome). A failure is logged and recorded; the connector is pulled again next
        interval."""
        now = utcnow()
        async with self.engine.connect() as conn:  # a read first: most seconds, nothing is due
            if await conn.scalar(select(connectors.c.id).where(_due(now)).limit(1)) is None:
                return 0
        c = connectors.c
        async with write_transaction(self.engine) as conn:
            ids = (select(c.id).where(_due(now)).order_by(c.next_run_at, c.id)
                   .limit(CLAIM_ROWS))
            claimed = await self._claim(conn, ids, now)
        await asyncio.gather(*(self._scheduled(row) for row in claimed))
        return len(claimed)

    async def _claim(self, conn, ids, now: datetime) -> list[DbRow]:
        """Lease the connectors ``ids`` selects that are still due, each for its own timeout
        plus the margin."""
        c = connectors.c
        rows = (await conn.execute(select(c.id, c.timeout_seconds)
                                   .where(c.id.in_(ids)))).all()
        claimed = []
        for row in rows:
            lease = now + _lease_for(row.timeout_seconds)
            got = (await conn.execute(update(connectors).where(c.id == row.id, _due(now))
                                      .values(lease_until=lease).returning(*_COLUMNS))).first()
            if got is not None:
                claimed.append(got)
        return claimed

    async def _scheduled(self, row: DbRow) -> None:
        try:
            await self._pull_and_record(row)
        except PullFailed as failed:
            log.warning("connector %s (%r) of organization %s: pull failed, tried again in "
                        "%ss: %s", row.id, row.name, row.organization_id,
                        row.interval_seconds, failed)
        except OverDailyQuota as over:
            log.warning("connector %s (%r) of organization %s: not pulled, tried again in "
                        "%ss: %s", row.id, row.name, row.organization_id,
                        row.interval_seconds, over.detail)
        except Exception:
            log.exception("connector %s (%r) of organization %s: pull failed, tried again "
                          "in %ss", row.id, row.name, row.organization_id, row.interval_seconds)
            await self._release(row, error="internal error while storing; see the server log")

    async def run(self, organization_id: int, connector_id: int) -> dict:
        """Pull one connector of the organization now: ``RunResult``'s fields. 404 for
        another organization's, 422 for an mqtt_topic connector, 502 ``BadGateway`` when the
        upstream failed (nothing stored), 409 when a pull of it is still running after a
        while."""
        async with self.engine.connect() as conn:
            connector = await get_connector(conn, organization_id, connector_id)
        if connector["kind"] != ConnectorKind.http_pull.value:
            raise Invalid(f"connector {connector_id} is an {connector['kind']} connector: only "
                          "http_pull connectors are pulled", loc=["path", "connector_id"])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RUN_WAIT_SECONDS
        while (row := await self._claim_one(connector_id)) is None:
            if loop.time() > deadline:
                raise Conflict(f"a pull of connector {connector_id} is still running; try "
                               "again shortly", headers={"Retry-After": "5"})
            await asyncio.sleep(0.2)
        try:
            return (await self._pull_and_record(row)).answer()
        except DeviceRefused as refused:
            raise Conflict(str(refused)) from None
        except PullFailed as failed:
            raise BadGateway(f"the upstream failed: {failed}") from None
        except OverDailyQuota:  # recorded as the connector's last_error; a 429 with Retry-After
            raise
        except BaseException:
            await self._release(row, error=None)
            raise

    async def _claim_one(self, connector_id: int) -> DbRow | None:
        now = utcnow()
        c = connectors.c
        async with write_transaction(self.engine) as conn:
            exists = (await conn.execute(select(c.timeout_seconds)
                                         .where(c.id == connector_id))).first()
            if exists is None:
                raise NotFound(f"connector {connector_id} not found")  # deleted meanwhile
            timeout = exists.timeout_seconds
            return (await conn.execute(
                update(connectors).where(c.id == connector_id, _free(now))
                .values(lease_until=now + _lease_for(timeout)).returning(*_COLUMNS))).first()

    async def _pull_and_record(self, row: DbRow) -> Pulled:
        """Pull ``row`` (leased by this process) and record the outcome, success or
        ``PullFailed`` (raised again after it is recorded)."""
        started = utcnow()
        try:
            pulled = await self._pull(row, started)
        except (PullFailed, OverDailyQuota) as failed:
            await self._release(row, error=str(getattr(failed, "detail", failed)),
                                started=started)
            raise
        await self._release(row, pulled=pulled, started=started)
        return pulled

    async def _release(self, row: DbRow, *, error: str | None = None,
                       pulled: Pulled | None = None, started: datetime | None = None) -> None:
        """Record a pull's outcome and give up the lease (if it is still this pull's)."""
        c = connectors.c
        values: dict = {"lease_until": case((c.lease_until == row.lease_until, None),
                                            else_=c.lease_until)}
        if started is not None and row.interval_seconds is not None:
            values["next_run_at"] = started + timedelta(seconds=row.interval_seconds)
        if pulled is not None:
            values.update(last_run_at=utcnow(), last_result=pulled.answer(), last_error=None)
            if pulled.newest is not None and (row.newest_reading_at is None
                                              or pulled.newest > row.newest_reading_at):
                values["newest_reading_at"] = pulled.newest
        elif error is not None:
            values["last_error"] = error[:MAX_ERROR_CHARS]
        async with write_transaction(self.engine) as conn:
            await conn.execute(update(connectors).where(c.id == row.id).values(**values))

    async def _pull(self, row: DbRow, now: datetime) -> Pulled:
        device = await self.ingestor.device(row.device_id)
        if device is None or device.target.organization_id != row.organization_id:
            raise DeviceRefused(f"device {row.device_id} not found")
        if device.status == "inactive":
            raise DeviceRefused(f"device {row.device_id} is inactive: nothing is stored for "
                                "it until a user reactivates it")
        body = await self._fetch(row)
        if body == []:  # nothing new since {since}: a quiet upstream is no error
            return Pulled(0, 0, 0, 0, [], None)
        source = Source(value_key=row.key or "value", byte_order=row.byte_order,
                        expect=row.format, max_age_seconds=row.max_age_seconds, strict=False)
        try:
            prepared = await self.ingestor.prepare(device.target, body, source, now=now)
        except OverDailyQuota:  # the organization's plan, not the upstream: a 429 on run
            raise
        except NothingStored as nothing:
            reasons = list(dict.fromkeys(r.reason for r in nothing.rejected))
            raise PullFailed("no reading of the answer can be stored: "
                             + "; ".join(reasons[:3]) + ("; ..." if len(reasons) > 3 else ""))
        except Invalid as invalid:
            raise PullFailed(f"the answer is not an ingestion body: {invalid.detail}") from None
        stored = await self.ingestor.commit([prepared])
        INGESTED["connector"].inc(stored.accepted)
        rows = prepared.rows
        return Pulled(fetched=len(rows) + len(prepared.rejected), stored=stored.accepted,
                      duplicates=stored.duplicates,
                      invalid=sum(1 for r in rows if not is_valid(r[3])),
                      rejected=[r.as_dict() for r in prepared.rejected],
                      newest=max((r[1] for r in rows), default=None))

    async def _fetch(self, row: DbRow):
        """The upstream's answer, parsed JSON, or ``PullFailed`` saying why not."""
        if not host_allowed(row.url, self.allowed_hosts):
            raise PullFailed("the url's host is not one TELEMETRA_CONNECTOR_ALLOWED_HOSTS "
                             "allows")
        headers = {}
        for name, sealed in (row.headers or {}).items():
            value = self.box.open(sealed)
            if value is None:
                raise PullFailed("the connector's headers cannot be read (was "
                                 "TELEMETRA_SECRET_KEY changed?); set them again")
            headers[name] = value
        timeout = row.timeout_seconds or 10
        url = expand_url(row.url, row.newest_reading_at)
        try:
            async with asyncio.timeout(timeout):
                async with self._client.stream("GET", url, headers=headers,
                                               timeout=timeout) as response:
                    if not 200 <= response.status_code < 300:
                        raise PullFailed(f"HTTP {response.status_code} "
                                         f"{response.reason_phrase}".rstrip())
                    content = bytearray()
                    async for chunk in response.aiter_bytes():
                        content += chunk
                        if len(content) > self.max_body_bytes:
                            raise PullFailed(f"the answer is larger than "
                                             f"{self.max_body_bytes} bytes")
        except TimeoutError:
            raise PullFailed(f"no complete answer within {timeout:g} s "
                             "(timeout_seconds)") from None
        except httpx.HTTPError as exc:
            raise PullFailed(f"cannot reach the upstream: {_describe(exc)}") from None
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            raise PullFailed(f"the answer is not JSON: {exc}") from None
