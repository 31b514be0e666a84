from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, StringConstraints

from telemetra.devices.schemas import Device
from telemetra.kit.schemas import Body, LongText, Name

Color = Annotated[str, StringConstraints(max_length=32)]


class GroupCreate(Body):
    name: Name
    description: LongText | None = None
    color: Color | None = None


class GroupUpdate(Body):
    name: Name = None  # may be left out (unchanged), not be null
    description: LongText | None = None
    color: Color | None = None


class GroupReplace(GroupCreate):
    """The whole group (PUT): a field left out takes its default, as at creation."""


class Group(BaseModel):
    id: int
    organization_id: int
    name: str
    description: str | None
    color: str | None
    device_count: int
    created_at: datetime
    updated_at: datetime


class GroupWithDevices(Group):
    devices: list[Device] | None = None
