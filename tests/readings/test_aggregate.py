"""Aggregation against a reference computed in Python, in UTC and across daylight saving.

The reference buckets every reading by converting it to local wall-clock time with zoneinfo,
independently of the server's SQL, and the two must agree on both databases.
"""

import math
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.helpers import device_key

# Span the 2026 spring-forward (29 March) and the 2025 fall-back (26 October) in
# Europe/Brussels: 40 days from either are in the past (readings in the future are refused).
SPRING = datetime(2026, 3, 27, tzinfo=UTC)
AUTUMN = datetime(2025, 10, 24, tzinfo=UTC)


def local_bucket(moment: datetime, interval: str, zone: ZoneInfo, start: datetime) -> datetime:
    """Reference: the bucket start, worked out on local calendar dates. Sub-day buckets are
    fixed widths aligned to the zone's offset at the start of the queried range."""
    local = moment.astimezone(zone)
    if interval.endswith("h") or interval.endswith("m"):
        width = int(interval[:-1]) * (3600 if interval.endswith("h") else 60)
        offset = int(start.astimezone(zone).utcoffset().total_seconds())
        epoch = math.floor(moment.timestamp()) - offset
        return datetime.fromtimestamp(epoch - epoch % width + offset, UTC)
    day = local.date()
    if interval == "1d":
        start = day
    elif interval == "1w":
        start = day - timedelta(days=day.weekday())
    else:
        start = day.replace(day=1)
    return datetime(start.year, start.month, start.day, tzinfo=zone).astimezone(UTC)


def reference(points, interval, zone, start):
    groups = defaultdict(list)
    for ts, value in sorted(points):
        groups[local_bucket(ts, interval, zone, start)].append(value)
    return {bucket: {"avg": sum(v) / len(v), "min": min(v), "max": max(v), "sum": sum(v),
                     "count": len(v), "first": v[0], "last": v[-1]}
            for bucket, v in groups.items()}


def random_points(seed: int, start: datetime, days: int, n: int):
    rng = random.Random(seed)
    seconds = days * 86400
    stamps = sorted({start + timedelta(seconds=rng.randrange(seconds)) for _ in range(n)})
    return [(ts, round(rng.uniform(-50, 50), 3)) for ts in stamps]


def load(api, device, points):
    body = [{"ts": ts.isoformat(), "values": {"x": value}} for ts, value in points]
    for i in range(0, len(body), 1000):
        response = api.post("/readings", device_key(device["api_key"]), json=body[i:i + 1000])
        assert response.status_code == 202 and response.json()["rejected"] == []


@pytest.mark.parametrize("zone_name", ["UTC", "Europe/Brussels"])
@pytest.mark.parametrize("start", [SPRING, AUTUMN], ids=["spring", "autumn"])
def test_aggregation_matches_the_reference(api, root, device, zone_name, start):
    zone = ZoneInfo(zone_name)
    points = random_points(seed=hash((zone_name, start.month)) & 0xFFFF, start=start, days=40,
                           n=1500)
    load(api, device, points)
    for interval in ("15m", "1h", "1d", "1w", "1mo"):
        response = api.get("/readings/aggregate", root, params={
            "device_id": device["id"], "interval": interval, "tz": zone_name,
            "start": start.isoformat(), "end": (start + timedelta(days=41)).isoformat(),
            "fn": "avg,min,max,sum,count,first,last"})
        assert response.status_code == 200, response.text
        got = {datetime.fromisoformat(row["bucket"]): row for row in response.json()["items"]}
        expected = reference(points, interval, zone, start)
        assert set(got) == set(expected), interval
        for bucket, values in expected.items():
            row = got[bucket]
            for name, value in values.items():
                assert row[name] == pytest.approx(value, abs=1e-6), (interval, bucket, name)


def test_daylight_saving_days_have_23_and_25_hours(api, root, device):
    zone = "Europe/Brussels"
    points = []
    for start in (datetime(2026, 3, 28, 23, tzinfo=UTC), datetime(2026, 10, 24, 22, tzinfo=UTC)):
        points += [(start + timedelta(minutes=30 * i), 1.0) for i in range(60)]
    load(api, device, points)
    rows = api.get("/readings/aggregate", root, params={
        "device_id": device["id"], "interval": "1d", "tz": zone, "fn": "count"}).json()["items"]
    counts = {row["bucket"]: row["count"] for row in rows}
    assert counts["2026-03-28T23:00:00Z"] == 46  # 29 March: 23 hours of half-hours
    assert counts["2026-10-24T22:00:00Z"] == 50  # 25 October: 25 hours


def test_several_sensors_each_get_their_rows_and_empty_buckets_are_absent(api, root, device):
    t0 = datetime(2026, 5, 1, tzinfo=UTC)
    body = [{"ts": (t0 + timedelta(hours=h)).isoformat(), "values": {"a": 1, "b": 2}}
            for h in (0, 1, 5)]
    api.post("/readings", device_key(device["api_key"]), json=body)
    rows = api.get("/readings/aggregate", root, params={
        "device_id": device["id"], "interval": "1h", "fn": "sum"}).json()["items"]
    assert [(r["key"], r["bucket"][11:13], r["sum"]) for r in rows] == [
        ("a", "00", 1.0), ("a", "01", 1.0), ("a", "05", 1.0),
        ("b", "00", 2.0), ("b", "01", 2.0), ("b", "05", 2.0)]
    assert set(rows[0]) == {"sensor_id", "device_id", "key", "bucket", "sum"}


def test_one_sensor_alone_and_invalid_readings_left_out(api, root, device):
    t0 = datetime(2026, 5, 1, tzinfo=UTC)
    body = [{"ts": (t0 + timedelta(minutes=20 * i)).isoformat(), "values": {"a": i, "b": 10 + i}}
            for i in range(6)]
    api.post("/readings", device_key(device["api_key"]), json=body)
    suspect = {"readings": [{"key": "a", "value": 1000, "tags": ["suspect"],
                             "ts": (t0 + timedelta(minutes=30)).isoformat()}]}
    api.post("/readings", device_key(device["api_key"]), json=suspect)
    params = {"interval": "1h", "fn": "avg,count,first,last"}
    rows = api.get("/readings/aggregate", root, params={"device_id": device["id"], **params}
                   ).json()["items"]
    a = [row for row in rows if row["key"] == "a"]
    assert [(r["bucket"][11:13], r["avg"], r["count"], r["first"], r["last"]) for r in a] == [
        ("00", 1.0, 3, 0.0, 2.0), ("01", 4.0, 3, 3.0, 5.0)]
    alone = api.get("/readings/aggregate", root, params={"sensor_id": a[0]["sensor_id"],
                                                         **params}).json()["items"]
    assert alone == a
    with_invalid = api.get("/readings/aggregate", root, params={
        "sensor_id": a[0]["sensor_id"], "include_invalid": True, **params}).json()["items"]
    assert (with_invalid[0]["count"], with_invalid[0]["avg"], with_invalid[0]["last"]) == (
        4, 250.75, 2.0)


def test_aggregates_of_another_organization_are_empty(two_tenants):
    t = two_tenants
    api, root, other, site, device = t["api"], t["root"], t["other"], t["site"], t["device"]
    mine = api.get("/readings/aggregate", root, params={
        "device_id": device["id"], "interval": "1h"}).json()["items"]
    assert [row["avg"] for row in mine] == [1.0]
    for params in ({"device_id": device["id"]}, {"site_id": site["id"]},
                   {"sensor_id": mine[0]["sensor_id"]}):
        for interval in ("1h", "1d"):
            response = api.get("/readings/aggregate", other,
                               params={**params, "interval": interval})
            assert response.status_code == 200 and response.json()["items"] == []


@pytest.mark.parametrize("params, field", [
    ({"interval": "1y"}, "interval"), ({"interval": "0h"}, "interval"),
    ({"interval": "48h"}, "interval"), ({"interval": "1h", "fn": "median"}, "fn"),
    ({"interval": "1h", "tz": "Mars/Base"}, "tz"), ({"interval": "1h", "start": "soon"}, "start"),
])
def test_bad_aggregation_parameters_are_422(api, root, device, params, field):
    response = api.get("/readings/aggregate", root, params={"device_id": device["id"], **params})
    assert response.status_code == 422
    assert field in response.json()["detail"]


@pytest.mark.parametrize("interval, start, end, buckets", [
    ("1d", "0001-01-01", "9999-12-31", 3_652_059),
    ("1s", "2026-05-01T00:00:00Z", "2026-05-03T00:00:00Z", 172_801),
    ("1mo", "0001-01-01", "9999-12-31", 119_988),
    ("1m", "2026-01-01T00:00:00Z", "2026-12-31T00:00:00Z", 524_161),
])
def test_a_range_of_more_than_100000_buckets_is_a_422_naming_the_limit(api, root, device,
                                                                      interval, start, end,
                                                                      buckets):
    response = api.get("/readings/aggregate", root, params={
        "device_id": device["id"], "interval": interval, "start": start, "end": end})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["errors"][0]["loc"] == ["query", "interval"]
    assert "100,000" in problem["detail"] and f"{buckets:,}" in problem["detail"]
    assert problem["limit"] == 100_000 and problem["buckets"] == buckets


def test_a_range_of_100000_buckets_or_fewer_is_answered(api, root, device):
    load(api, device, [(datetime(2026, 5, 1, 12, tzinfo=UTC), 3.0)])
    response = api.get("/readings/aggregate", root, params={
        "device_id": device["id"], "interval": "1s", "start": "2026-05-01T00:00:00Z",
        "end": "2026-05-02T00:00:00Z"})  # 86,401 buckets
    assert response.status_code == 200
    assert [item["avg"] for item in response.json()["items"]] == [3.0]


@pytest.mark.parametrize("zone_name", ["UTC", "Europe/Brussels", "America/St_Johns"])
@pytest.mark.parametrize("interval", ["15m", "1h", "1d", "3d", "1w", "2w", "1mo", "5mo"])
def test_bucket_count_is_the_number_of_buckets_the_range_spans(zone_name, interval):
    from telemetra.readings.buckets import (
        bucket_count,
        bucket_of,
        fixed_offset_seconds,
        parse_interval,
    )

    zone, parsed = ZoneInfo(zone_name), parse_interval(interval)
    rng = random.Random(hash((zone_name, interval)) & 0xFFFF)
    step = timedelta(minutes=5) if parsed.fixed else timedelta(hours=1)
    for _ in range(5):
        start = SPRING + timedelta(minutes=rng.randrange(400 * 1440))
        end = start + timedelta(minutes=rng.randrange(1, (3 if parsed.fixed else 400) * 1440))
        offset = fixed_offset_seconds(zone, start)
        seen, moment = set(), start
        while moment < end:
            seen.add(bucket_of(moment, parsed, zone, offset))
            moment += step
        seen.add(bucket_of(end, parsed, zone, offset))
        assert bucket_count(start, end, parsed, zone, offset) == len(seen), (start, end)
