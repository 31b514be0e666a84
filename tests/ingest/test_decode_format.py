"""A source that names its format (a connector's ``format``) gets only that body decoded.

Pure logic: no database here.
"""

import pytest
from hypothesis import given, settings

from telemetra.ingest.decode import FORMAT_NAMES, decode_body
from telemetra.kit.errors import Invalid
from tests.ingest.test_decode import EPOCH, bodyish

# One body of each format, in the order of API.md (bodies 1 to 7).
EXAMPLES = {
    "keys": {"temperature": 23.5, "humidity": 60},
    "values": {"ts": EPOCH, "values": {"temperature": 23.5}},
    "data": {"data": {"temperature": 23.5}, "metadata": {"fw": "1"}, "timestamp": EPOCH},
    "readings": {"readings": [{"key": "temperature", "value": 23.5}]},
    "sensor_type": {"sensor_type": "temperature", "value": 23.5, "unit": "°C"},
    "bytes": {"time": EPOCH, "value": [0, 0, 128, 63]},
    "sensor_id": {"sensor_id": 12, "value": 22.5, "unit": "C", "status": "pending"},
}
LISTABLE = ("values", "sensor_type", "bytes", "sensor_id")


def test_format_names_are_auto_and_the_seven_bodies_in_order():
    assert FORMAT_NAMES == ("auto", *EXAMPLES)


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_expected_format_decodes_as_auto_does(name):
    body = EXAMPLES[name]
    decoded = decode_body(body, expect=name)
    assert decoded == decode_body(body) and decoded[0]


@pytest.mark.parametrize("expect, sent", [(expect, sent) for expect in EXAMPLES
                                          for sent in EXAMPLES if sent != expect])
def test_another_format_is_invalid_naming_the_expected_one(expect, sent):
    with pytest.raises(Invalid) as error:
        decode_body(EXAMPLES[sent], expect=expect)
    assert error.value.status == 422
    assert error.value.detail.startswith(f"expected the {expect!r} format")


@pytest.mark.parametrize("name", LISTABLE)
def test_a_list_keeps_its_items_of_the_format_and_rejects_the_others_alone(name):
    other = next(n for n in LISTABLE if n != name)
    body = [EXAMPLES[name], EXAMPLES[other], EXAMPLES[name]]
    readings, rejected = decode_body(body, expect=name)
    assert len(readings) == 2
    assert [(r.index, r.reason) for r in rejected] == [(1, f"not the {name!r} format")]


@pytest.mark.parametrize("name", LISTABLE)
def test_a_list_with_no_item_of_the_format_is_invalid(name):
    other = next(n for n in LISTABLE if n != name)
    with pytest.raises(Invalid, match=f"expected the {name!r} format"):
        decode_body([EXAMPLES[other], {"nonsense": True}], expect=name)


@pytest.mark.parametrize("name", ["keys", "data", "readings"])
def test_formats_that_never_come_as_a_list_refuse_one(name):
    with pytest.raises(Invalid, match=f"expected the {name!r} format"):
        decode_body([EXAMPLES[name]], expect=name)


def test_the_key_and_byte_order_still_apply_to_bytes():
    readings = decode_body({"time": EPOCH, "value": [63, 128, 0, 0]}, expect="bytes",
                           value_key="level", byte_order="big")[0]
    assert [(r.key, r.value) for r in readings] == [("level", 1.0)]


def test_an_unknown_format_name_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown format"):
        decode_body(EXAMPLES["keys"], expect="xml")


def _outcome(body, **kwargs):
    try:
        return decode_body(body, **kwargs)
    except Invalid as error:
        return "invalid", error.detail


@settings(max_examples=300, deadline=None)
@given(bodyish)
def test_auto_is_exactly_the_unrestricted_decoder(body):
    assert _outcome(body, expect="auto") == _outcome(body) == _outcome(body, expect=None)


@settings(max_examples=300, deadline=None)
@given(bodyish)
def test_a_restricted_object_decodes_as_auto_or_is_invalid(body):
    unrestricted = _outcome(body)
    for name in FORMAT_NAMES[1:]:
        restricted = _outcome(body, expect=name)
        if restricted[0] == "invalid":
            continue
        if isinstance(body, dict):
            assert restricted == unrestricted
        else:  # a list: only items of the format are read, the others rejected one by one
            readings, rejected = restricted
            assert len({j.index for j in rejected}) == len(rejected)
