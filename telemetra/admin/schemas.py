from pydantic import BaseModel

from telemetra.devices.schemas import DeviceStatus
from telemetra.kit.schemas import Body


class PlatformStats(BaseModel):
    organizations: int
    users: int
    active_users: int
    devices: int
    online_devices: int
    sensors: int
    sites: int
    groups: int
    readings: int


class DeviceStatusCounts(BaseModel):
    active: int
    inactive: int
    maintenance: int
    online: int
    offline: int
    total: int


class DeviceStatusChange(Body):
    status: DeviceStatus
