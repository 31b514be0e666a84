"""Alert rules: create, read, change, delete (admins write). Each change records
``AlertRuleChanged``, so every process's evaluator reloads the organization's rules. Never
commits."""

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from telemetra.alerts.events import AlertRuleChanged
from telemetra.alerts.schemas import AlertRuleCreate, AlertRuleUpdate, Condition, check_rule
from telemetra.db.tables import alert_rules, devices, groups, sites
from telemetra.kit.crypto import SecretBox
from telemetra.kit.errors import Invalid
from telemetra.kit.events import record
from telemetra.kit.pagination import PageParams, paginate
from telemetra.kit.scoping import ensure_scoped, get_scoped, scoped
from telemetra.kit.secrets import random_token
from telemetra.kit.timeutil import utcnow
from telemetra.orgs.plans import enforce_count

SECRET_PREFIX = "whsec_"
_SHOWN = [c for c in alert_rules.c if c.name != "webhook_secret"]


def rule_out(row: RowMapping, secret: str | None = None) -> dict:
    """A rule as the API shows it: never its stored secret; ``secret`` only when just set."""
    out = {c.name: row[c.name] for c in _SHOWN}
    out["webhook_secret"] = secret
    return out


async def get_rule(conn: AsyncConnection, organization_id: int, rule_id: int) -> RowMapping:
    return await get_scoped(conn, alert_rules, rule_id, organization_id, "alert rule")


async def list_rules(conn: AsyncConnection, organization_id: int, params: PageParams, *,
                     device_id: int | None = None, enabled: bool | None = None
                     ) -> tuple[list, int]:
    query = scoped(alert_rules, organization_id).order_by(alert_rules.c.id)
    if device_id is not None:
        query = query.where(alert_rules.c.device_id == device_id)
    if enabled is not None:
        query = query.where(alert_rules.c.enabled == enabled)
    rows, total = await paginate(conn, query, params)
    return [rule_out(row) for row in rows], total


async def _check_scope(conn: AsyncConnection, organization_id: int, values: dict) -> None:
    for table, field in ((devices, "device_id"), (sites, "site_id"), (groups, "group_id")):
        if field in values:
            await ensure_scoped(conn, table, values[field], organization_id, field)


def _secret_values(box: SecretBox, url: str | None, given: str | None,
                   had_secret: bool) -> tuple[dict, str | None]:
    """The stored columns for a webhook, and the secret to show once (given or generated)."""
    if given is not None:
        return {"webhook_secret": box.seal(given)}, given
    if url is not None and not had_secret:
        secret = random_token(SECRET_PREFIX)
        return {"webhook_secret": box.seal(secret)}, secret
    return {}, None


async def create_rule(conn: AsyncConnection, organization_id: int, body: AlertRuleCreate,
                      box: SecretBox) -> dict:
    """A new rule; its webhook secret (given or generated) is in this answer only."""
    values = body.model_dump(exclude={"webhook_secret"})
    await _check_scope(conn, organization_id, values)
    await enforce_count(conn, organization_id, "alert_rules")  # 409 past the plan's
    if body.condition == Condition.offline:
        values["threshold_high"] = None
    stored, shown = _secret_values(box, body.webhook_url, body.webhook_secret, False)
    now = utcnow()
    rule_id = await conn.scalar(insert(alert_rules).values(
        **values, **stored, organization_id=organization_id, created_at=now, updated_at=now,
    ).returning(alert_rules.c.id))
    record(conn, AlertRuleChanged(organization_id, rule_id))
    return rule_out(await get_rule(conn, organization_id, rule_id), shown)


async def update_rule(conn: AsyncConnection, organization_id: int, rule_id: int,
                      body: AlertRuleUpdate, box: SecretBox) -> dict:
    """Apply the fields sent; the changed rule is checked as a whole. Setting
    ``webhook_url`` turns the webhook back on (after a 410) and, if the rule had no secret,
    generates one, shown in this answer."""
    rule = await get_rule(conn, organization_id, rule_id)
    changes = body.model_dump(exclude_unset=True, exclude={"webhook_secret"})
    for field in ("name", "condition", "for_seconds", "severity", "enabled"):
        if field in changes and changes[field] is None:
            raise Invalid(f"{field} may be changed, not removed", loc=["body", field])
    merged = {**dict(rule), **changes}
    try:
        check_rule(merged)
    except ValueError as exc:
        raise Invalid(str(exc), loc=["body"]) from None
    await _check_scope(conn, organization_id, changes)
    url_set = changes.get("webhook_url") is not None
    stored, shown = _secret_values(box, changes.get("webhook_url"),
                                   body.webhook_secret if "webhook_secret" in
                                   body.model_fields_set else None,
                                   rule["webhook_secret"] is not None)
    if url_set:
        changes["webhook_enabled"] = True
    if changes or stored:
        await conn.execute(update(alert_rules).where(alert_rules.c.id == rule_id)
                           .values(**changes, **stored, updated_at=utcnow()))
        record(conn, AlertRuleChanged(organization_id, rule_id))
    return rule_out(await get_rule(conn, organization_id, rule_id), shown)


async def delete_rule(conn: AsyncConnection, organization_id: int, rule_id: int) -> None:
    """Delete a rule with its alerts and their deliveries."""
    await get_rule(conn, organization_id, rule_id)
    await conn.execute(delete(alert_rules).where(alert_rules.c.id == rule_id))
    record(conn, AlertRuleChanged(organization_id, rule_id))


async def disable_webhook(conn: AsyncConnection, rule_id: int) -> None:
    """The receiver answered 410 Gone: the rule sends no more until its URL is set again."""
    await conn.execute(update(alert_rules).where(alert_rules.c.id == rule_id)
                       .values(webhook_enabled=False, updated_at=utcnow()))
    organization_id = await conn.scalar(select(alert_rules.c.organization_id)
                                        .where(alert_rules.c.id == rule_id))
    if organization_id is not None:
        record(conn, AlertRuleChanged(organization_id, rule_id))
