"""Alert rules (admins write, everyone in the organization reads) and alerts."""

from datetime import timedelta

from fastapi import APIRouter, Request, status
from fastapi.responses import Response

from telemetra.alerts import rules, service
from telemetra.alerts.schemas import (
    Alert,
    AlertDetail,
    AlertRule,
    AlertRuleCreate,
    AlertRuleUpdate,
    AlertState,
    Severity,
)
from telemetra.auth.dependencies import Admin, CurrentUser, Member
from telemetra.kit.db import ConnDep, TransactionalRoute
from telemetra.kit.pagination import Page, PageDep
from telemetra.kit.schemas import page

# Unknown query parameters are refused for every router (kit.routes.StrictQuery, in app.py).
rules_router = APIRouter(prefix="/alert-rules", tags=["alerts"], route_class=TransactionalRoute)
alerts_router = APIRouter(prefix="/alerts", tags=["alerts"], route_class=TransactionalRoute)

_RULE_DOC = ("Conditions `gt`, `gte`, `lt`, `lte`, `eq`, `ne` compare the sensor `key`'s "
             "readings with `threshold`; `outside` and `inside` use `threshold` to "
             "`threshold_high`; `offline` fires when a device goes offline. Scope: at most one "
             "of `device_id`, `site_id`, `group_id` (none: the whole organization). A "
             "`webhook_url` gets every change signed with `webhook_secret`, generated when "
             "left out and shown only in this answer.")


def _box(request: Request):
    return request.app.state.secret_box


def _retry(request: Request) -> timedelta:
    return timedelta(hours=request.app.state.settings.webhook_retry_hours)


@rules_router.get("", response_model=Page[AlertRule], summary="List alert rules")
async def list_alert_rules(conn: ConnDep, user: CurrentUser, params: PageDep,
                           device_id: int | None = None, enabled: bool | None = None):
    items, total = await rules.list_rules(conn, user.organization_id, params,
                                          device_id=device_id, enabled=enabled)
    return page(items, total, params)


@rules_router.post("", response_model=AlertRule, status_code=status.HTTP_201_CREATED,
                   summary="Create an alert rule (admin)", description=_RULE_DOC)
async def create_alert_rule(body: AlertRuleCreate, conn: ConnDep, user: Admin,
                            request: Request):
    return await rules.create_rule(conn, user.organization_id, body, _box(request))


@rules_router.get("/{rule_id}", response_model=AlertRule, summary="One alert rule")
async def get_alert_rule(rule_id: int, conn: ConnDep, user: CurrentUser):
    return rules.rule_out(await rules.get_rule(conn, user.organization_id, rule_id))


@rules_router.patch("/{rule_id}", response_model=AlertRule,
                    summary="Update an alert rule (admin)",
                    description="The changed rule is checked as a whole. " + _RULE_DOC)
async def update_alert_rule(rule_id: int, body: AlertRuleUpdate, conn: ConnDep, user: Admin,
                            request: Request):
    return await rules.update_rule(conn, user.organization_id, rule_id, body, _box(request))


@rules_router.delete("/{rule_id}", status_code=status.HTTP_204_NO_CONTENT,
                     summary="Delete an alert rule with its alerts (admin)")
async def delete_alert_rule(rule_id: int, conn: ConnDep, user: Admin):
    await rules.delete_rule(conn, user.organization_id, rule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@alerts_router.get("", response_model=Page[Alert], summary="List alerts, newest first")
async def list_alerts(conn: ConnDep, user: CurrentUser, params: PageDep,
                      state: AlertState | None = None, severity: Severity | None = None,
                      device_id: int | None = None, rule_id: int | None = None):
    items, total = await service.list_alerts(conn, user.organization_id, params, state=state,
                                             severity=severity, device_id=device_id,
                                             rule_id=rule_id)
    return page(items, total, params)


@alerts_router.get("/{alert_id}", response_model=AlertDetail,
                   summary="One alert with its rule and triggering reading")
async def get_alert(alert_id: int, conn: ConnDep, user: CurrentUser):
    return await service.get_alert(conn, user.organization_id, alert_id, rules.rule_out)


@alerts_router.post("/{alert_id}/acknowledge", response_model=Alert,
                    summary="Acknowledge an active alert (member)",
                    description="409 unless the alert is active. It stays open until the "
                                "condition clears or a user resolves it.")
async def acknowledge_alert(alert_id: int, conn: ConnDep, user: Member, request: Request):
    return await service.acknowledge(conn, user.organization_id, alert_id, user.username,
                                     _retry(request))


@alerts_router.post("/{alert_id}/resolve", response_model=Alert,
                    summary="Resolve an open alert (member)",
                    description="409 if it is resolved already. While the condition still "
                                "holds, the next reading that meets it fires a new alert.")
async def resolve_alert(alert_id: int, conn: ConnDep, user: Member, request: Request):
    return await service.resolve(conn, user.organization_id, alert_id, user.username,
                                 _retry(request))
