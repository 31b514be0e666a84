"""A dashboard's layout, validated on the way in so that anything stored renders.

Pydantic names a shape error by its place (``body.layout.tiles.2.chart``); the rules it cannot
express alone (a range, an interval, an aggregate function, one of ``sensorType`` and ``key``)
say which tile by its id as well. References to devices and sites are checked by the service.
"""

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import (
    BaseModel,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from telemetra.kit.errors import Invalid
from telemetra.kit.schemas import Body, LongText, Name
from telemetra.kit.timeparse import relative_seconds
from telemetra.readings.aggregate import FUNCTIONS, MAX_BUCKETS, parse_functions
from telemetra.readings.buckets import parse_interval

MAX_TILES = 100
GRID_COLUMNS = 48  # wider than any grid the UI uses (12 or 24): x + w must fit in it
MAX_GRID_ROW = 10_000
MAX_TILE_HEIGHT = 200
MAX_RANGE_SECONDS = 10 * 366 * 86_400  # ten years back
# Rough lengths of calendar intervals, enough to bound a tile's buckets.
_INTERVAL_SECONDS = {"d": 86_400, "w": 604_800, "mo": 2_629_746}

TileId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Title = Annotated[str, StringConstraints(max_length=200)]
SensorKey = Annotated[str, StringConstraints(min_length=1, max_length=100)]
SensorType = Annotated[str, StringConstraints(min_length=1, max_length=50)]
ShortCode = Annotated[str, StringConstraints(min_length=1, max_length=64)]
DEFAULT_NAME = "My dashboard"


class Chart(StrEnum):
    line = "line"
    area = "area"
    bar = "bar"
    gauge = "gauge"
    stat = "stat"
    table = "table"


class TilePlace(Body):
    """Where a tile sits on the grid, in grid cells (``i``, if given, is the tile's id)."""

    i: TileId | None = None
    x: Annotated[int, Field(ge=0, lt=GRID_COLUMNS)]
    y: Annotated[int, Field(ge=0, le=MAX_GRID_ROW)]
    w: Annotated[int, Field(ge=1, le=GRID_COLUMNS)]
    h: Annotated[int, Field(ge=1, le=MAX_TILE_HEIGHT)]

    @model_validator(mode="after")
    def _fits(self) -> "TilePlace":
        if self.x + self.w > GRID_COLUMNS:
            raise ValueError(f"x + w is {self.x + self.w}; the grid has {GRID_COLUMNS} columns")
        return self


def _tile(info: ValidationInfo) -> str:
    tile_id = info.data.get("id")
    return f"tile {tile_id!r}: " if tile_id else ""


def _reason(exc: Invalid) -> str:
    """The message of a query parameter's parser, without its ``name:`` prefix."""
    return exc.detail.split(": ", 1)[-1]


class Tile(Body):
    """One chart: the readings of a sensor ``key`` (or of every sensor of a ``sensorType``),
    of a device or site or of the whole organization."""

    id: TileId
    title: Title = ""
    sensor_type: SensorType | None = Field(None, alias="sensorType")
    key: SensorKey | None = None
    device_id: int | None = None
    site_id: int | None = None
    chart: Chart | None = Field(None, description="How to draw it; the UI's default is line.")
    range: ShortCode | None = Field(
        None, description="How far back it shows, a relative time: -15m, -24h, -7d, -2w "
                          "(at most ten years).", examples=["-24h"])
    interval: ShortCode | None = Field(
        None, description="Aggregate into buckets of this width, as "
                          "`GET /readings/aggregate` takes it: 1m, 5m, 1h, 1d, 1w, 1mo.")
    fn: ShortCode | None = Field(
        None, description=f"Aggregate functions, comma-separated: {', '.join(FUNCTIONS)}.")
    layout: TilePlace

    @field_validator("range")
    @classmethod
    def _range(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        seconds = relative_seconds(value)
        if seconds is None:
            raise ValueError(f"{_tile(info)}range {value!r} is not a relative time; use -30s, "
                             "-15m, -24h, -7d or -2w")
        if not 0 < seconds <= MAX_RANGE_SECONDS:
            raise ValueError(f"{_tile(info)}range {value!r} must reach back more than nothing "
                             "and at most ten years")
        return value.strip()

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        try:
            return str(parse_interval(value))
        except Invalid as exc:
            raise ValueError(f"{_tile(info)}interval {_reason(exc)}") from None

    @field_validator("fn")
    @classmethod
    def _fn(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        try:
            return ",".join(parse_functions(value))
        except Invalid as exc:
            raise ValueError(f"{_tile(info)}fn: {_reason(exc)}") from None

    @model_validator(mode="after")
    def _consistent(self) -> "Tile":
        name = f"tile {self.id!r}"
        if (self.sensor_type is None) == (self.key is None):
            raise ValueError(f"{name}: give either sensorType or key (one, not both)")
        if self.layout.i is not None and self.layout.i != self.id:
            raise ValueError(f"{name}: layout.i is {self.layout.i!r}; leave it out or make it "
                             "the tile's id")
        if self.range and self.interval:
            interval = parse_interval(self.interval)
            width = interval.seconds if interval.fixed else (
                interval.count * _INTERVAL_SECONDS[interval.unit])
            buckets = relative_seconds(self.range) // width
            if buckets > MAX_BUCKETS:
                raise ValueError(f"{name}: interval {self.interval} over range {self.range} "
                                 f"would be {buckets:,} buckets, more than {MAX_BUCKETS:,}; "
                                 "widen the interval")
        return self


class Layout(Body):
    tiles: Annotated[list[Tile], Field(max_length=MAX_TILES,
                                       description=f"At most {MAX_TILES} tiles, ids unique.")]

    @model_validator(mode="after")
    def _unique_ids(self) -> "Layout":
        seen: dict[str, int] = {}
        for index, tile in enumerate(self.tiles):
            if tile.id in seen:
                raise ValueError(f"tiles[{index}]: id {tile.id!r} is tiles[{seen[tile.id]}]'s "
                                 "too; tile ids must be unique")
            seen[tile.id] = index
        return self


EMPTY_LAYOUT = {"tiles": []}
LayoutField = Annotated[Layout, Field(
    description="The tiles and where each sits. A layout that is not this shape is a 422 "
                "naming the tile (its place in `tiles`, and its id) and the field.")]


class DashboardCreate(Body):
    name: Name
    description: LongText | None = None
    layout: LayoutField = Field(default_factory=lambda: Layout(tiles=[]))


class DashboardUpdate(Body):
    name: Name = None  # may be left out (unchanged), not be null
    description: LongText | None = None
    layout: LayoutField = None


class DashboardReplace(DashboardCreate):
    """The whole dashboard (PUT): a field left out takes its default, as at creation."""


class DefaultDashboardReplace(Body):
    """The caller's own default dashboard, whole (PUT)."""

    name: Name = DEFAULT_NAME
    description: LongText | None = None
    layout: LayoutField


class Dashboard(BaseModel):
    id: int
    organization_id: int
    user_id: int | None = Field(description="The user whose own default dashboard this is; "
                                            "null for the organization's shared dashboards.")
    name: str
    description: str | None
    layout: Layout
    created_at: datetime
    updated_at: datetime


class DefaultDashboard(BaseModel):
    """The caller's own default dashboard; before their first PUT, an empty one that is not
    stored yet (``id`` and the times null)."""

    id: int | None
    organization_id: int
    user_id: int
    name: str
    description: str | None
    layout: Layout
    created_at: datetime | None
    updated_at: datetime | None
