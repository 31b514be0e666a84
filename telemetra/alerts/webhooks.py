"""Webhook deliveries: the outbox written with each alert change, sent by a job.

Every second each process claims due deliveries under a lease in the database (a conditional
UPDATE: a row leased by one process is not due for another), POSTs them signed, and records
the outcome (an alert's changes in order: one waits while an earlier one of the same alert is
pending): a 2xx ends a delivery, a 410 Gone disables the rule's webhook, anything else is
retried with exponential back-off (1 s, 2 s, 4 s, ... at most an hour apart) until the
delivery is ``TELEMETRA_WEBHOOK_RETRY_HOURS`` old. A process killed mid-delivery leaves its
lease to expire, and another (or its restart) sends it again, with the same
``X-Telemetra-Delivery`` for the receiver to drop a repeat.
"""

import asyncio
import hashlib
import hmac
import logging
from datetime import timedelta

import httpx
import orjson
from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from telemetra.alerts.rules import disable_webhook
from telemetra.db.tables import alert_rules, webhook_deliveries
from telemetra.kit.crypto import SecretBox
from telemetra.kit.db import write_transaction
from telemetra.kit.events import EventBus
from telemetra.kit.outbound import outbound_client
from telemetra.kit.timeutil import utcnow
from telemetra.system.metrics import WEBHOOK_DELIVERIES

log = logging.getLogger("telemetra.webhooks")

SIGNATURE_HEADER = "X-Telemetra-Signature"
CLAIM_ROWS = 20
MAX_BACKOFF_SECONDS = 3600.0
MAX_ERROR_CHARS = 500


def signature(secret: str, body: bytes) -> str:
    """The ``X-Telemetra-Signature`` value of ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failure: 1 s, doubling, at most an hour."""
    return timedelta(seconds=min(2.0 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS))


_earlier = webhook_deliveries.alias("earlier")


def _due(now):
    d = webhook_deliveries.c
    # An alert's changes go out in order: none while an earlier one of it is pending.
    waiting = (select(_earlier.c.id).where(_earlier.c.alert_id == d.alert_id,
                                           _earlier.c.id < d.id,
                                           _earlier.c.state == "pending").exists())
    return and_(d.state == "pending", d.next_attempt_at <= now,
                or_(d.lease_until.is_(None), d.lease_until < now), ~waiting)


class WebhookSender:
    """Sends the outbox's due deliveries; ``run_once`` is the job."""

    def __init__(self, engine: AsyncEngine, events: EventBus, box: SecretBox, *,
                 timeout: float = 10.0) -> None:
        self.engine, self.events, self.box = engine, events, box
        self.timeout = timeout
        self.lease = timedelta(seconds=timeout * 2 + 10)
        self._client: httpx.AsyncClient | None = None
        self.results: dict[str, int] = {"delivered": 0, "retried": 0, "failed": 0}

    async def start(self) -> None:
        self._client = outbound_client(timeout=self.timeout)

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def run_once(self) -> int:
        """Claim and send what is due; how many were sent (whatever their outcome)."""
        now = utcnow()
        async with self.engine.connect() as conn:  # a read first: most seconds, nothing is due
            if await conn.scalar(select(webhook_deliveries.c.id).where(_due(now))
                                 .limit(1)) is None:
                return 0
        d = webhook_deliveries.c
        async with write_transaction(self.engine) as conn:
            ids = select(d.id).where(_due(now)).order_by(d.id).limit(CLAIM_ROWS)
            claimed = (await conn.execute(
                update(webhook_deliveries).where(d.id.in_(ids), _due(now))
                .values(lease_until=now + self.lease)
                .returning(d.id, d.organization_id, d.rule_id, d.delivery_id, d.event, d.url,
                           d.alert, d.attempts, d.expires_at))).all()
            secrets = {row.id: row for row in await conn.execute(
                select(alert_rules.c.id, alert_rules.c.webhook_secret,
                       alert_rules.c.webhook_enabled)
                .where(alert_rules.c.id.in_({c.rule_id for c in claimed})))}
        await asyncio.gather(*(self._deliver(row, secrets.get(row.rule_id)) for row in claimed))
        return len(claimed)

    async def _deliver(self, row, rule) -> None:
        secret = None if rule is None or rule.webhook_secret is None else self.box.open(
            rule.webhook_secret)
        if rule is None or not rule.webhook_enabled:
            await self._finish(row, "failed", "the rule's webhook is disabled")
            return
        if secret is None:
            await self._finish(row, "failed", "the webhook secret cannot be read (was "
                                              "TELEMETRA_SECRET_KEY changed?); set it again")
            return
        sent_at = utcnow().isoformat().replace("+00:00", "Z")
        body = orjson.dumps({"event": row.event, "alert": row.alert,
                             "organization_id": row.organization_id, "sent_at": sent_at})
        headers = {"Content-Type": "application/json", "X-Telemetra-Event": row.event,
                   "X-Telemetra-Delivery": row.delivery_id,
                   SIGNATURE_HEADER: signature(secret, body)}
        try:
            response = await self._client.post(row.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            await self._retry(row, f"{type(exc).__name__}: {exc}" if str(exc)
                              else type(exc).__name__)
            return
        if 200 <= response.status_code < 300:
            await self._finish(row, "delivered", None)
        elif response.status_code == 410:
            await self._finish(row, "failed", "410 Gone: the rule's webhook is now disabled",
                               gone=True)
        else:
            await self._retry(row, f"HTTP {response.status_code}")

    async def _retry(self, row, error: str) -> None:
        attempts = row.attempts + 1
        next_at = utcnow() + backoff(attempts)
        if next_at > row.expires_at:
            await self._finish(row, "failed", f"{error} (gave up after {attempts} attempts)")
            return
        self.results["retried"] += 1
        WEBHOOK_DELIVERIES.labels(result="retried").inc()
        async with write_transaction(self.engine) as conn:
            await conn.execute(update(webhook_deliveries)
                               .where(webhook_deliveries.c.id == row.id)
                               .values(attempts=attempts, last_error=error[:MAX_ERROR_CHARS],
                                       next_attempt_at=next_at, lease_until=None))

    async def _finish(self, row, state: str, error: str | None, gone: bool = False) -> None:
        self.results[state] += 1
        WEBHOOK_DELIVERIES.labels(result=state).inc()
        if state == "failed":
            log.warning("webhook delivery %s of rule %s failed: %s", row.delivery_id,
                        row.rule_id, error)
        async with write_transaction(self.engine, self.events) as conn:
            await conn.execute(update(webhook_deliveries)
                               .where(webhook_deliveries.c.id == row.id)
                               .values(state=state, attempts=row.attempts + 1,
                                       last_error=error and error[:MAX_ERROR_CHARS],
                                       lease_until=None,
                                       delivered_at=utcnow() if state == "delivered" else None))
            if gone:
                await disable_webhook(conn, row.rule_id)
