from datetime import datetime

from pydantic import BaseModel


class Summary(BaseModel):
    devices_total: int
    devices_online: int
    sensors: int
    readings_today: int
    active_alerts: int


class TrendPoint(BaseModel):
    bucket: datetime
    value: float | None
    count: int


class Trend(BaseModel):
    key: str
    interval: str
    fn: str
    items: list[TrendPoint]
