"""Strict ingestion bodies (API.md, Conventions "Strict input"): a field that no format has is
refused, naming it, so a misspelt ``timestmap`` never silently means "now". One object: the
body is a 422 (``Invalid``) with the field in ``loc``; an item of a list: that item alone is
rejected with the reason, the others are stored. A connector's upstream is read leniently.

Pure logic: no database here (the HTTP and MQTT paths are in test_rules.py and
tests/mqtt/test_ingest.py).
"""

import pytest

from telemetra.ingest.decode import decode_body
from telemetra.kit.errors import Invalid
from tests.ingest.test_decode import EPOCH

# Each object body with every field its format allows: none of them is refused.
FULL = {
    "values": {"ts": EPOCH, "values": {"t": 1}, "metadata": {"fw": "1"}, "tags": ["a"]},
    "values, timestamp": {"timestamp": EPOCH, "values": {"t": 1}},
    "data": {"data": {"t": 1}, "metadata": {"fw": "1"}, "timestamp": EPOCH, "tags": ["a"]},
    "data, ts": {"data": {"t": 1}, "ts": EPOCH},
    "readings": {"readings": [
        {"key": "t", "value": 1, "unit": "C", "ts": EPOCH, "tags": ["a"], "meta": {"q": 1}},
        {"sensor_type": "h", "value": 1, "timestamp": EPOCH},
        {"key": "p", "value": 1, "time": EPOCH},
        {"sensor_id": 5, "value": 1, "unit": "C", "ts": EPOCH, "status": "pending"}]},
    "sensor_type": {"sensor_type": "t", "value": 1, "unit": "C", "timestamp": EPOCH,
                    "tags": ["a"], "meta": {"q": 1}},
    "bytes": {"time": EPOCH, "value": [0, 0, 128, 63], "tags": ["a"], "key": "level",
              "unit": "m"},
    "sensor_id": {"sensor_id": 5, "value": 1, "timestamp": EPOCH, "unit": "C", "tags": ["a"],
                  "meta": {"q": 1}, "status": "pending"},
}


@pytest.mark.parametrize("name", FULL)
def test_every_field_of_a_format_is_taken(name):
    readings, rejected = decode_body(FULL[name])
    assert readings and rejected == []


@pytest.mark.parametrize("body, field", [
    ({"ts": EPOCH, "values": {"t": 1}, "timestmap": EPOCH}, "timestmap"),
    ({"data": {"t": 1}, "metdata": {}}, "metdata"),
    ({"readings": [{"key": "t", "value": 1}], "device": 3}, "device"),
    ({"sensor_type": "t", "value": 1, "units": "C"}, "units"),
    ({"time": EPOCH, "value": [0, 0, 128, 63], "tag": "a"}, "tag"),
    ({"sensor_id": 5, "value": 1, "timestmap": EPOCH}, "timestmap"),
])
def test_an_unknown_field_of_one_object_is_a_422_naming_it(body, field):
    with pytest.raises(Invalid) as error:
        decode_body(body)
    assert error.value.detail.startswith(f"unknown field '{field}'")
    assert error.value.extra["errors"][0]["loc"] == ["body", field]
    assert "this format's fields:" in error.value.detail


def test_several_unknown_fields_are_all_named():
    with pytest.raises(Invalid) as error:
        decode_body({"sensor_type": "t", "value": 1, "accuracy": 0.1, "quality": "good"})
    assert error.value.detail.startswith("unknown fields 'accuracy', 'quality';")


def test_device_id_in_the_body_says_where_it_goes():
    with pytest.raises(Invalid, match=r"device_id goes in the query"):
        decode_body({"readings": [{"key": "t", "value": 1}], "device_id": 4})


@pytest.mark.parametrize("items", [
    [{"sensor_type": "t", "value": 1}, {"sensor_type": "h", "value": 2, "units": "%"}],
    [{"time": EPOCH, "value": [0, 0, 128, 63]}, {"time": EPOCH, "value": [0, 0, 0, 64],
                                                 "units": "m"}],
    [{"sensor_id": 5, "value": 1}, {"sensor_id": 6, "value": 2, "units": "C"}],
])
def test_an_item_with_an_unknown_field_is_rejected_alone(items):
    readings, rejected = decode_body(items)
    assert len(readings) == 1
    assert [r.index for r in rejected] == [1]
    assert rejected[0].reason.startswith("unknown field 'units'")


def test_an_item_of_readings_with_an_unknown_field_is_rejected_alone():
    readings, rejected = decode_body({"readings": [
        {"key": "t", "value": 1}, {"key": "h", "value": 2, "tiemstamp": EPOCH}]})
    assert [r.key for r in readings] == ["t"]
    assert [(r.index, r.key) for r in rejected] == [(1, "h")]
    assert rejected[0].reason.startswith("unknown field 'tiemstamp'")


def test_a_values_item_with_an_unknown_field_rejects_each_of_its_values():
    readings, rejected = decode_body([{"ts": EPOCH, "values": {"a": 1}},
                                      {"ts": EPOCH, "values": {"b": 1, "c": 2}, "tz": "UTC"}])
    assert [r.key for r in readings] == ["a"]
    assert [(r.index, r.key) for r in rejected] == [(1, "b"), (2, "c")]


def test_body_1_has_no_unknown_fields_its_keys_are_sensors():
    readings, rejected = decode_body({"temperature": 1, "anything_else": 2})
    assert {r.key for r in readings} == {"temperature", "anything_else"} and rejected == []


def test_an_upstream_read_leniently_keeps_the_readings_and_ignores_the_extra_fields():
    body = [{"time": EPOCH, "value": [0, 0, 128, 63], "id": 17, "quality": "good"}]
    readings, rejected = decode_body(body, expect="bytes", strict=False)
    assert [r.value for r in readings] == [1.0] and rejected == []
    with pytest.raises(Invalid):
        decode_body(body[0], expect="bytes")
