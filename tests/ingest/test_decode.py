"""The seven ingestion bodies decode to the same readings; bad readings are rejected alone.

Pure logic: no database here.
"""

import math
import struct
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetra.ingest.decode import Reading, decode_body, parse_json
from telemetra.kit.errors import Invalid

T0 = datetime(2026, 1, 1, tzinfo=UTC)
EPOCH = int(T0.timestamp())


def keys_values(body, **kwargs):
    readings, rejected = decode_body(body, **kwargs)
    return [(r.key, r.value) for r in readings], [(j.index, j.reason) for j in rejected]


def test_format_1_keys_to_values_with_time_now():
    readings, rejected = decode_body({"temperature": 23.5, "humidity": 60, "door": True})
    assert [(r.key, r.value, r.ts) for r in readings] == [
        ("temperature", 23.5, None), ("humidity", 60.0, None), ("door", 1.0, None)]
    assert rejected == []


def test_format_2_with_time_and_as_a_list():
    single = decode_body({"ts": EPOCH, "values": {"t": 1}})[0]
    many = decode_body([{"ts": EPOCH, "values": {"t": 1}},
                        {"ts": "2026-01-01T00:00:01Z", "values": {"t": 2, "h": 3}}])[0]
    assert single == [Reading("t", 1.0, T0)]
    assert [(r.key, r.value, r.ts.second) for r in many] == [("t", 1.0, 0), ("t", 2.0, 1),
                                                            ("h", 3.0, 1)]


def test_format_3_data_with_metadata_and_millisecond_time():
    readings = decode_body({"data": {"t": 1.5}, "metadata": {"fw": "1.0"},
                            "timestamp": EPOCH * 1000 + 250})[0]
    assert readings[0].meta == {"fw": "1.0"}
    assert readings[0].ts == T0.replace(microsecond=250_000)


def test_format_4_readings_list_with_units_and_tags():
    readings, rejected = decode_body({"readings": [
        {"sensor_type": "temperature", "value": 21, "unit": "°C", "timestamp": EPOCH},
        {"key": "co2", "value": 600, "ts": "2026-01-01T01:00:00+01:00", "tags": ["suspect"]},
    ]})
    assert [(r.key, r.unit, r.ts, r.tags) for r in readings] == [
        ("temperature", "°C", T0, None), ("co2", None, T0, ["suspect"])]
    assert rejected == []


def test_format_5_one_or_a_list():
    assert keys_values({"sensor_type": "temperature", "value": 22.5, "unit": "°C"}) == (
        [("temperature", 22.5)], [])
    assert keys_values([{"sensor_type": "a", "value": 1}, {"sensor_type": "b", "value": 2}]) == (
        [("a", 1.0), ("b", 2.0)], [])


def test_format_6_float32_bytes_little_endian_by_default():
    readings = decode_body({"time": EPOCH, "value": [157, 42, 76, 190], "tags": ["system"]})[0]
    assert readings[0].key == "value" and readings[0].tags == ["system"]
    assert readings[0].value == -0.19938130676746368
    named = decode_body([{"time": EPOCH, "value": [0, 0, 128, 63]}], value_key="level")[0]
    assert (named[0].key, named[0].value) == ("level", 1.0)
    big = decode_body({"time": EPOCH, "value": [63, 128, 0, 0]}, byte_order="big")[0]
    assert big[0].value == 1.0


@pytest.mark.parametrize("body, reason", [
    ({"t": "23.5"}, "string value"),
    ({"t": None}, "missing value"),
    ({"time": EPOCH, "value": [1, 2, 3]}, "not four bytes"),
    ({"time": EPOCH, "value": [1, 2, 3, 256]}, "byte out of range"),
    ({"time": EPOCH, "value": [0, 0, 128, 127]}, "non-finite value"),  # float32 +inf
    ({"ts": "not a time", "values": {"t": 1}}, "invalid timestamp"),
    ({"sensor_type": "bad\nkey", "value": 1}, "invalid key"),
    ({"readings": [{"key": "t", "value": 1, "tags": "suspect"}]}, "invalid tags"),
    ({"readings": [42]}, "unknown format"),
])
def test_bad_readings_are_rejected_with_a_reason(body, reason):
    readings, rejected = decode_body(body)
    assert readings == []
    assert len(rejected) == 1 and rejected[0].reason.startswith(reason)


def test_nan_and_infinity_from_lenient_json_are_rejected_per_reading():
    body = parse_json(b'{"a": NaN, "b": Infinity, "c": 1e999, "d": 4}')
    assert keys_values(body) == ([("d", 4.0)], [(0, "non-finite value"), (1, "non-finite value"),
                                                (2, "non-finite value")])


def test_one_bad_reading_does_not_sink_the_others():
    values, rejected = keys_values([{"sensor_type": "a", "value": 1}, {"nonsense": True},
                                    {"sensor_type": "b", "value": "x"}])
    assert values == [("a", 1.0)]
    assert rejected == [(1, "unknown format"), (2, "string value")]


@pytest.mark.parametrize("body", [{}, [], "text", 42, None, {"a": {"nested": 1}}, [1, 2],
                                  {"readings": []}, {"readings": "x"}, {"data": {}}])
def test_a_body_that_is_no_format_is_invalid(body):
    with pytest.raises(Invalid) as error:
        decode_body(body)
    assert error.value.status == 422


def test_invalid_json_is_invalid():
    with pytest.raises(Invalid, match="not valid JSON"):
        parse_json(b"{nope")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
bodyish = st.one_of(
    json_values,
    st.dictionaries(st.sampled_from(["ts", "values", "data", "metadata", "timestamp",
                                     "readings", "sensor_type", "key", "value", "unit", "tags",
                                     "time"]), json_values, max_size=6),
    st.lists(st.dictionaries(st.sampled_from(["ts", "values", "sensor_type", "value", "time",
                                              "tags", "key"]), json_values, max_size=4),
             max_size=4),
)


@settings(max_examples=400, deadline=None)
@given(bodyish)
def test_random_bodies_decode_or_raise_only_invalid(body):
    try:
        readings, rejected = decode_body(body)
    except Invalid:
        return
    for reading in readings:
        assert isinstance(reading.key, str) and math.isfinite(reading.value)
    # Every candidate reading is accounted for exactly once.
    indexes = [j.index for j in rejected]
    assert len(indexes) == len(set(indexes))


@settings(max_examples=300, deadline=None)
@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_float32_bytes_round_trip(number):
    raw = list(struct.pack("<f", number))
    readings = decode_body({"time": EPOCH, "value": raw})[0]
    assert readings[0].value == number
    assert list(struct.pack("<f", readings[0].value)) == raw


def test_body_7_names_sensors_by_id_and_ignores_a_review_status():
    readings, rejected = decode_body([
        {"sensor_id": 5, "value": 22.5, "unit": "C", "status": "pending"},
        {"sensor_id": "5", "value": 1}, {"sensor_id": True, "value": 1},
        {"sensor_id": 0, "value": 1}, {"sensor_id": 6, "value": "warm"}])
    assert [(r.sensor_id, r.key, r.value, r.unit) for r in readings] == [(5, None, 22.5, "C")]
    assert [(j.index, j.reason) for j in rejected] == [
        (1, "invalid sensor_id: a positive integer"), (2, "invalid sensor_id: a positive integer"),
        (3, "invalid sensor_id: a positive integer"), (4, "string value")]


def test_the_formats_field_names_are_never_keys_of_body_1():
    readings, rejected = decode_body({"value": 3, "unit": 1, "temperature": 20, "ts": 5})
    assert [r.key for r in readings] == ["temperature"]
    assert [j.key for j in rejected] == ["value", "unit", "ts"]
    assert all("field name of the formats" in j.reason for j in rejected)
    # Named explicitly in body 2, a key is the sender's choice.
    readings, _ = decode_body({"ts": 1767268800, "values": {"status": 1}})
    assert [r.key for r in readings] == ["status"]
