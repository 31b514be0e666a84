"""What storage cannot hold is refused at decoding, per reading with its reason (issue 9):
times out of range, NUL characters, meta too deep or too large. Pure logic: no database."""

from datetime import UTC, datetime, timedelta

import pytest

from telemetra.ingest.decode import decode_body
from telemetra.ingest.limits import MAX_META_BYTES, ReadingLimits

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
EPOCH = int(NOW.timestamp())


def deep(levels: int) -> dict:
    meta: dict = {"leaf": 1}
    for _ in range(levels - 1):
        meta = {"a": meta}
    return meta


def decoded(body, **kwargs):
    readings, rejected = decode_body(body, now=NOW, **kwargs)
    return [r.key for r in readings], [(j.index, j.reason) for j in rejected]


@pytest.mark.parametrize("ts, reason", [
    ("0001-01-01T00:00:00Z", "before 1970-01-01T00:00:00Z"),
    ("1969-12-31T23:59:59Z", "before 1970-01-01T00:00:00Z"),
    (-1, "before 1970-01-01T00:00:00Z"),
    ("9999-12-31T23:59:59Z", "in the future"),
    ("2099-01-01T00:00:00Z", "in the future"),
    (EPOCH + 301, "in the future"),
    ((EPOCH + 3600) * 1000, "in the future"),
])
def test_times_storage_should_not_hold_are_rejected_per_reading(ts, reason):
    for body in ({"readings": [{"key": "bad", "value": 1, "ts": ts},
                               {"key": "good", "value": 2, "ts": EPOCH}]},
                 [{"ts": ts, "values": {"bad": 1}}, {"ts": EPOCH, "values": {"good": 2}}],
                 [{"time": ts, "key": "bad", "value": [0, 0, 128, 63]},
                  {"time": EPOCH, "key": "good", "value": [0, 0, 128, 63]}]):
        assert decoded(body) == (["good"], [(0, reason)]), body


def test_the_edges_are_accepted_and_the_limits_are_settings():
    edges = {"readings": [{"key": "a", "value": 1, "ts": "1970-01-01T00:00:00Z"},
                          {"key": "b", "value": 1, "ts": EPOCH + 300}]}
    assert decoded(edges) == (["a", "b"], [])
    strict = ReadingLimits(min_time=datetime(2020, 1, 1, tzinfo=UTC),
                           max_future=timedelta(seconds=10))
    assert decoded(edges, limits=strict) == ([], [(0, "before 2020-01-01T00:00:00Z"),
                                                  (1, "in the future")])
    # a whole body's time: every reading of it is rejected, each with the reason
    assert decoded({"data": {"t": 1, "h": 2}, "timestamp": "2099-01-01"}) == (
        [], [(0, "in the future"), (1, "in the future")])


def test_untimed_readings_are_timed_by_the_server_and_never_in_the_future():
    assert decoded({"t": 1}) == (["t"], [])


@pytest.mark.parametrize("bad, reason", [
    ({"tags": ["ok", "a\u0000b"]}, "NUL character in a tag"),
    ({"unit": "\u0000C"}, "NUL character in the unit"),
    ({"meta": {"fw": "1\u00002"}}, "NUL character in meta"),
    ({"meta": {"k\u0000": 1}}, "NUL character in meta"),
    ({"meta": {"a": [{"b": ["x", "\u0000"]}]}}, "NUL character in meta"),
    ({"meta": deep(17)}, "meta nested deeper than 16 levels"),
    ({"meta": deep(600)}, "meta nested deeper than 16 levels"),
    ({"meta": {"blob": "x" * MAX_META_BYTES}}, "meta larger than 16 KiB"),
])
def test_nul_characters_and_unbounded_meta_are_rejected_per_reading(bad, reason):
    body = {"readings": [{"key": "good", "value": 1}, {"key": "bad", "value": 2, **bad},
                         {"key": "also", "value": 3}]}
    assert decoded(body) == (["good", "also"], [(1, reason)])


def test_meta_within_the_bounds_is_kept_as_sent():
    meta = {"deep": deep(15), "text": "a\\u0000 is only text", "list": [[1], {"b": "{["}],
            "blob": "x" * (MAX_META_BYTES - 200)}
    readings, rejected = decode_body({"readings": [{"key": "t", "value": 1, "meta": meta}]},
                                     now=NOW)
    assert rejected == [] and readings[0].meta == meta


def test_metadata_of_formats_2_and_3_is_bounded_too():
    for body in ({"data": {"t": 1, "h": 2}, "metadata": deep(600)},
                 [{"ts": EPOCH, "values": {"t": 1, "h": 2}, "metadata": deep(17)}]):
        assert decoded(body) == (
            [], [(0, "metadata nested deeper than 16 levels"),
                 (1, "metadata nested deeper than 16 levels")]), body
    assert decoded({"data": {"t": 1}, "metadata": {"fw": "\u0000"}}) == (
        [], [(0, "NUL character in metadata")])
    assert decoded({"data": {"t": 1}, "metadata": deep(16)}) == (["t"], [])


def test_a_nul_in_a_key_is_an_invalid_key():
    keys, rejected = decoded({"readings": [{"key": "t\u0000", "value": 1}]})
    assert keys == [] and rejected[0][1].startswith("invalid key")
