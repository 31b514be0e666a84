"""Alert rules and alerts as the API shows and takes them (API.md, Alerts)."""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints, model_validator

from telemetra.connectors.schemas import check_http_url
from telemetra.kit.schemas import Body, Name
from telemetra.sensors.schemas import SensorKey

MAX_FOR_SECONDS = 7 * 86_400


class Condition(StrEnum):
    gt = "gt"
    gte = "gte"
    lt = "lt"
    lte = "lte"
    eq = "eq"
    ne = "ne"
    outside = "outside"  # value < threshold or value > threshold_high
    inside = "inside"    # threshold <= value <= threshold_high
    offline = "offline"  # the device went offline (its offline_after_seconds passed unseen)


RANGE_CONDITIONS = frozenset({Condition.outside, Condition.inside})


class Severity(StrEnum):
    info = "info"
    warning = "warning"
    critical = "critical"


class AlertState(StrEnum):
    active = "active"
    acknowledged = "acknowledged"
    resolved = "resolved"


WebhookUrl = Annotated[str, StringConstraints(min_length=1, max_length=2000),
                       Field(description="Each alert change is POSTed here, signed (README, "
                                         "Verifying a webhook signature)")]
WebhookSecret = Annotated[str, StringConstraints(min_length=16, max_length=200), Field(
    description="The HMAC-SHA256 key of the signatures; generated when left out, and shown "
                "only in the answer that set it")]
Threshold = Annotated[float, Field(allow_inf_nan=False)]
ForSeconds = Annotated[int, Field(ge=0, le=MAX_FOR_SECONDS, description=(
    "The condition must hold this long before the alert fires"))]


def check_rule(values: dict[str, Any]) -> None:
    """The rules a whole rule obeys, created or changed (a ValueError saying which)."""
    condition = values.get("condition")
    if condition is None:
        return
    if condition != Condition.offline:
        if values.get("key") is None:
            raise ValueError(f"key: a {condition} rule watches one sensor key")
        if values.get("threshold") is None:
            raise ValueError(f"threshold: a {condition} rule needs a threshold")
    if condition in RANGE_CONDITIONS:
        high = values.get("threshold_high")
        if high is None:
            raise ValueError(f"threshold_high: a {condition} rule needs threshold_high")
        if high < values["threshold"]:
            raise ValueError("threshold_high must not be below threshold")
    scopes = [name for name in ("device_id", "site_id", "group_id")
              if values.get(name) is not None]
    if len(scopes) > 1:
        raise ValueError(f"name at most one of device_id, site_id, group_id, not {scopes}")
    url = values.get("webhook_url")
    if url is not None:
        try:
            check_http_url(url)
        except ValueError as exc:
            raise ValueError(f"webhook_url: {exc}") from None


class AlertRuleCreate(Body):
    name: Name
    key: SensorKey | None = Field(default=None, description="The sensor key watched (not for "
                                                            "`offline`)")
    condition: Condition
    threshold: Threshold | None = None
    threshold_high: Threshold | None = Field(default=None, description="`outside`, `inside`")
    for_seconds: ForSeconds = 0
    severity: Severity = Severity.warning
    device_id: int | None = None
    site_id: int | None = None
    group_id: int | None = None
    enabled: bool = True
    webhook_url: WebhookUrl | None = None
    webhook_secret: WebhookSecret | None = None

    @model_validator(mode="after")
    def _whole(self) -> "AlertRuleCreate":
        check_rule(self.__dict__)
        return self


class AlertRuleUpdate(Body):
    # Fields left out are unchanged; the changed rule is checked as a whole (service).
    name: Name = None
    key: SensorKey | None = None
    condition: Condition = None
    threshold: Threshold | None = None
    threshold_high: Threshold | None = None
    for_seconds: ForSeconds = None
    severity: Severity = None
    device_id: int | None = None
    site_id: int | None = None
    group_id: int | None = None
    enabled: bool = None
    webhook_url: WebhookUrl | None = None
    webhook_secret: WebhookSecret | None = None


class AlertRule(BaseModel):
    id: int
    organization_id: int
    name: str
    key: str | None
    condition: Condition
    threshold: float | None
    threshold_high: float | None
    for_seconds: int
    severity: Severity
    device_id: int | None
    site_id: int | None
    group_id: int | None
    enabled: bool
    webhook_url: str | None
    webhook_enabled: bool = Field(description="False once the receiver answered 410 Gone; "
                                              "setting webhook_url again turns it back on")
    webhook_secret: str | None = Field(default=None, description=(
        "Only in the answer that created or set it: store it, it is never shown again"))
    created_at: datetime
    updated_at: datetime


class WebhookState(StrEnum):
    pending = "pending"
    delivered = "delivered"
    failed = "failed"


class AlertWebhook(BaseModel):
    state: WebhookState
    attempts: int
    last_error: str | None = None


class Alert(BaseModel):
    id: int
    rule_id: int
    rule_name: str
    severity: Severity
    state: AlertState
    device_id: int
    sensor_id: int | None = None
    key: str | None
    value: float | None
    threshold: float | None
    started_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = Field(default=None, description=(
        "`condition cleared`, or the username of who resolved it"))
    webhook: AlertWebhook | None = None


class TriggeringReading(BaseModel):
    id: str
    sensor_id: int
    ts: datetime
    value: float


class AlertDetail(Alert):
    rule: AlertRule
    reading: TriggeringReading | None = Field(description=(
        "The reading that fired it (none for `offline`, or once the reading is deleted)"))

