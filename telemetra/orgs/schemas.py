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


class Usage(BaseModel):
    organization_id: int
    plan: str
    devices: int
    max_devices: int | None
    sensors: int
    readings_today: int
    readings_this_month: int
    readings_total: int
    max_readings_per_day: int | None
    storage_bytes: int = Field(description="Approximate bytes of readings stored")
