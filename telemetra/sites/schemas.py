from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from telemetra.kit.schemas import Body, LongText, Name, ShortText

Latitude = Annotated[float, Field(ge=-90, le=90, strict=True)]  # never a boolean
Longitude = Annotated[float, Field(ge=-180, le=180, strict=True)]


class SiteCreate(Body):
    name: Name
    description: LongText | None = None
    location: ShortText | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    timezone: Annotated[str, Field(max_length=64)] | None = None


class SiteUpdate(Body):
    name: Name = None  # may be left out (unchanged), not be null
    description: LongText | None = None
    location: ShortText | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    timezone: Annotated[str, Field(max_length=64)] | None = None


class SiteReplace(SiteCreate):
    """The whole site (PUT): a field left out takes its default, as at creation."""


class Site(BaseModel):
    id: int
    organization_id: int
    name: str
    description: str | None
    location: str | None
    latitude: float | None
    longitude: float | None
    timezone: str | None
    created_at: datetime
    updated_at: datetime


class SiteStatistics(BaseModel):
    site_id: int
    site_name: str
    total_devices: int
    total_sensors: int
    active_sensors: int
    inactive_sensors: int
    maintenance_sensors: int
    total_readings: int
    latest_reading_ts: datetime | None
