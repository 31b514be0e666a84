from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from telemetra.kit.schemas import Body
from telemetra.readings.flags import ReviewStatus


class Reading(BaseModel):
    id: str = Field(description="Opaque id of the reading")
    sensor_id: int
    device_id: int
    key: str
    ts: datetime
    value: float
    unit: str | None
    valid: bool
    status: ReviewStatus
    tags: list[str] | None = None
    meta: dict[str, Any] | None = None


class ReadingPage(BaseModel):
    items: list[Reading]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at "
                                                "the end")


class ReadingUpdate(Body):
    value: float | None = None
    status: ReviewStatus | None = None
    tags: Annotated[list[Annotated[str, StringConstraints(min_length=1, max_length=100)]],
                    Field(max_length=20)] | None = None


class ReviewAction(StrEnum):
    validate = "validate"
    archive = "archive"


class ReviewRequest(Body):
    action: ReviewAction
    sensor_id: int | None = None
    device_id: int | None = None
    start: str | float | None = Field(default=None, description="Time (ISO 8601, epoch, or "
                                                                "relative like -1h)")
    end: str | float | None = None


class Count(BaseModel):
    count: int


class AggregateRow(BaseModel):
    sensor_id: int
    device_id: int
    key: str
    bucket: datetime = Field(description="Start of the bucket (UTC)")
    avg: float | None = None
    min: float | None = None
    max: float | None = None
    sum: float | None = None
    count: int | None = None
    first: float | None = None
    last: float | None = None


class AggregateList(BaseModel):
    items: list[AggregateRow]
