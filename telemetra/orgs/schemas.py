from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from telemetra.kit.schemas import Body

DEFAULT_INVALID_TAGS = ["system", "suspect", "too old"]

OrgName = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class Organization(BaseModel):
    id: int
    name: str
    plan: str
    max_devices: int | None
    max_readings_per_day: int | None
    retention_days: int
    invalid_tags: list[str]
    created_at: datetime
    updated_at: datetime


class OrganizationUpdate(Body):
    # Each may be left out (unchanged), none may be null: the columns are NOT NULL.
    name: OrgName = None
    retention_days: Annotated[int, Field(ge=1, le=36500)] = None
    invalid_tags: Annotated[list[Tag], Field(max_length=100)] = None


class PlanUpdate(Body):
    plan: Annotated[str, StringConstraints(min_length=1, max_length=50)]
    max_devices: Annotated[int, Field(ge=0)] | None = None
    max_readings_per_day: Annotated[int, Field(ge=0)] | None = None


class DeviceRejections(BaseModel):
    device_id: int
    rate_limited: int = Field(description="Ingestion requests refused by the device key's "
                                          "rate limit today (429 rate_limited)")
    quota_exceeded: int = Field(description="Bodies or MQTT messages refused by the daily "
                                            "readings quota today (429 quota_exceeded)")


class Rejections(BaseModel):
    rate_limited: int
    quota_exceeded: int
    by_device: list[DeviceRejections] = Field(
        description="The devices with ingestion refused today, so a user can see why data "
                    "is missing")


class Usage(BaseModel):
    """Usage against the plan's limits (a ``max_`` field that is null: no limit)."""

    organization_id: int
    plan: str
    devices: int
    max_devices: int | None
    alert_rules: int
    max_alert_rules: int | None
    sensors: int
    readings_today: int = Field(description="Readings stored since midnight UTC (duplicates "
                                            "left out), all processes")
    readings_this_month: int
    readings_total: int
    max_readings_per_day: int | None
    readings_quota_resets_at: datetime
    retention_days: int
    max_retention_days: int | None
    storage_bytes: int = Field(description="Approximate bytes of readings stored")
    rejected_today: Rejections
