from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from telemetra.kit.schemas import Body, FreeForm, Name, ShortText, check_free_form, refuse_nul

OfflineAfter = Annotated[int, Field(ge=5, le=31_536_000,
                                    description="Seconds without contact before offline")]
Metadata = FreeForm
Version = Annotated[str, StringConstraints(max_length=100)]
DeviceType = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class DeviceStatus(StrEnum):
    active = "active"
    inactive = "inactive"
    maintenance = "maintenance"


class DeviceCreate(Body):
    name: Name
    device_type: DeviceType | None = None
    site_id: int | None = None
    location: ShortText | None = None
    firmware_version: Version | None = None
    metadata: Metadata | None = None
    status: DeviceStatus = DeviceStatus.active
    offline_after_seconds: OfflineAfter = 300


class DeviceUpdate(Body):
    # name, status and offline_after_seconds may be left out (unchanged) but not be null.
    name: Name = None
    device_type: DeviceType | None = None
    site_id: int | None = None
    location: ShortText | None = None
    firmware_version: Version | None = None
    metadata: Metadata | None = None
    status: DeviceStatus = None
    offline_after_seconds: OfflineAfter = None


class DeviceReplace(DeviceCreate):
    """The whole device (PUT): a field left out takes its default, as at creation (no
    metadata, ``status`` active, ``offline_after_seconds`` 300)."""


class Device(BaseModel):
    id: int
    organization_id: int
    name: str
    device_type: str | None
    site_id: int | None
    owner_id: int | None
    location: str | None
    firmware_version: str | None
    metadata: dict[str, Any] | None
    status: DeviceStatus
    online: bool
    last_seen: datetime | None
    offline_after_seconds: int
    api_key_prefix: str = Field(description="The key's first characters, to recognise it")
    created_at: datetime
    updated_at: datetime


class DeviceWithKey(Device):
    api_key: str = Field(description="The device key. Shown this once: only its hash is kept.")


class DeviceStatusInfo(BaseModel):
    device_id: int
    status: DeviceStatus
    online: bool
    last_seen: datetime | None
    offline_after_seconds: int


class Heartbeat(BaseModel):
    """Optional fields; any other fields are merged into the device's metadata."""

    model_config = ConfigDict(extra="allow")

    status: DeviceStatus | None = None
    firmware_version: Version | None = None
    metadata: Metadata | None = None

    @model_validator(mode="after")
    def _bounded(self) -> "Heartbeat":
        refuse_nul(self)
        if self.model_extra:  # what is merged into the metadata is bounded as metadata is
            try:
                check_free_form(self.model_extra)
            except ValueError as exc:
                raise ValueError(f"the extra fields are {exc}") from None
        return self


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"
    critical = "critical"


class LogCreate(Body):
    level: LogLevel = LogLevel.info
    message: Annotated[str, StringConstraints(min_length=1, max_length=10_000)]
    ts: datetime | None = Field(default=None, description="When it happened; default now")


class DeviceLog(BaseModel):
    id: int
    device_id: int
    ts: datetime
    level: LogLevel
    message: str


class LogsAccepted(BaseModel):
    accepted: int
