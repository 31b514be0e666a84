from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, StringConstraints, model_validator

from telemetra.kit.schemas import Body, Name

SensorKey = Annotated[str, StringConstraints(min_length=1, max_length=100,
                                             pattern=r"^[A-Za-z0-9_.:/ -]+$")]
SensorType = Annotated[str, StringConstraints(min_length=1, max_length=50)]
Unit = Annotated[str, StringConstraints(max_length=32)]


class SensorStatus(StrEnum):
    active = "active"
    inactive = "inactive"
    maintenance = "maintenance"


class _Range(Body):
    @model_validator(mode="after")
    def _range_ordered(self):
        low, high = getattr(self, "valid_min", None), getattr(self, "valid_max", None)
        if low is not None and high is not None and low > high:
            raise ValueError("valid_min must not be greater than valid_max")
        return self


class SensorCreate(_Range):
    device_id: int
    key: SensorKey
    type: SensorType = "other"
    unit: Unit | None = None
    name: Name | None = None
    status: SensorStatus = SensorStatus.active
    valid_min: float | None = None
    valid_max: float | None = None


class SensorUpdate(_Range):
    type: SensorType = None  # type and status may be left out (unchanged), not be null
    unit: Unit | None = None
    name: Name | None = None
    status: SensorStatus = None
    valid_min: float | None = None
    valid_max: float | None = None


class SensorReplace(SensorCreate):
    """The whole sensor (PUT): a field left out takes its default, as at creation.
    ``device_id`` and ``key`` say which sensor it is: required, and they cannot change."""


class Sensor(BaseModel):
    id: int
    organization_id: int
    device_id: int
    key: str
    type: str
    unit: str | None
    name: str | None
    status: SensorStatus
    valid_min: float | None
    valid_max: float | None
    last_value: float | None
    last_ts: datetime | None
    created_at: datetime
    updated_at: datetime
