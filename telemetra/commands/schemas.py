from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from telemetra.kit.schemas import Body, FreeForm, FreeFormValue

CommandName = Annotated[str, StringConstraints(min_length=1, max_length=100,
                                               pattern=r"^[A-Za-z0-9_.:/-]+$")]
Params = Annotated[FreeForm, Field(description="Free-form JSON object for the device")]
Ttl = Annotated[int, Field(ge=1, le=2_592_000,
                           description="Seconds the command stays valid (at most 30 days); "
                                       "left out, it never expires")]


class CommandStatus(StrEnum):
    queued = "queued"
    delivered = "delivered"
    succeeded = "succeeded"
    failed = "failed"
    expired = "expired"
    cancelled = "cancelled"


class CommandOutcome(StrEnum):
    """What a device may report: receipt (``delivered``) or the outcome."""

    delivered = "delivered"
    succeeded = "succeeded"
    failed = "failed"


class CommandCreate(Body):
    name: CommandName = Field(description="Letters, digits and `_ - . : /`, e.g. `reboot` or "
                                          "`relay/1:on`")
    params: Params | None = None
    ttl_seconds: Ttl | None = None


class CommandReport(Body):
    status: CommandOutcome
    result: FreeFormValue = Field(
        default=None,
        description="Any JSON value describing the outcome; kept with `succeeded` or `failed`")


class Command(BaseModel):
    id: int
    device_id: int
    name: str
    params: dict[str, Any]
    status: CommandStatus
    result: Any = Field(description="What the device reported with its outcome, if anything")
    created_by: int | None = Field(description="The user who sent it")
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = Field(description="Past this it is `expired`; null: never")
    delivered_at: datetime | None
    completed_at: datetime | None = Field(description="When it succeeded, failed, expired or "
                                                      "was cancelled")
