"""An import's errors name the line, the column and the fix, never Python's own messages."""

import pytest

T = "2026-02-01T00:00:00Z"


def _import(api, root, text: str, **params):
    return api.post("/readings/import", {**root, "Content-Type": "text/csv"},
                    content=text.encode(), params=params)


@pytest.mark.parametrize("header, missing", [
    ("key,ts,value", "no device_id column"),
    ("device_id,key,time,value", "no ts column"),
    ("sensor,when,reading", "no key, ts, value, device_id column"),
])
def test_a_header_without_a_needed_column_names_it_and_the_fix(api, root, header, missing):
    response = _import(api, root, f"{header}\n1,2,3\n")
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith("line 1 (the CSV header): " + missing), detail
    assert "missing []" not in detail and "device_id,key,ts,value" in detail
    assert f"it has {header.replace(',', ', ')}" in detail
    if missing == "no device_id column":
        assert "device_id in the query" in detail


def test_a_header_without_device_id_is_fine_when_the_device_is_given(api, root):
    device = api.device(root)
    response = _import(api, root, f"key,ts,value\nt,{T},1\n", device_id=device["id"])
    assert response.status_code == 200 and response.json()["accepted"] == 1, response.text


def test_each_bad_line_names_its_line_column_and_fix(api, root):
    device = api.device(root)
    lines = ["device_id,key,ts,value",
             f"{device['id']},t,{T},abc",           # 2
             f"{device['id']},t,{T},",              # 3
             f"{device['id']},t,yesterday,1",       # 4
             f",t,{T},1",                           # 5
             f"one,t,{T},1",                        # 6
             f"{device['id']},,{T},1",              # 7
             f"{device['id']},t,{T},nan",           # 8
             f"{device['id']},t,{T},1,extra",       # 9
             f"{device['id']},t,{T},21.5"]
    response = _import(api, root, "\n".join(lines) + "\n")
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["accepted"] == 1
    reasons = {rejection["index"]: rejection["reason"] for rejection in result["rejected"]}
    assert reasons[2] == ("value: 'abc' is not a number; write a decimal number such as 21.5 "
                          "(or true/false)")
    assert reasons[3].startswith("value: missing")
    assert reasons[4].startswith("ts: 'yesterday' is not a time; use ISO 8601")
    assert reasons[5].startswith("device_id: missing; fill it in, or give the device")
    assert reasons[6] == "device_id: 'one' is not a device id (a whole number)"
    assert reasons[7].startswith("key: missing")
    assert reasons[8] == "value: 'nan' is not a finite number"
    assert reasons[9].startswith("5 fields but the header names 4 columns")
    assert not any("could not convert" in reason for reason in reasons.values())


def test_ndjson_lines_that_are_not_objects_say_what_a_line_is(api, root):
    device = api.device(root)
    body = b'not json\n[1, 2]\n{"device_id": %d, "key": "t", "ts": "%s", "value": "x"}\n' % (
        device["id"], T.encode())
    response = api.post("/readings/import", {**root, "Content-Type": "application/x-ndjson"},
                        content=body)
    # nothing could be stored: a 422 carrying the rejections, as ingestion answers
    assert response.status_code == 422, response.text
    assert response.json()["accepted"] == 0 and response.json()["rejected_total"] == 3
    reasons = [rejection["reason"] for rejection in response.json()["rejected"]]
    assert reasons[0].startswith("not JSON (") and "one JSON object" in reasons[0]
    assert reasons[1].startswith("not a JSON object; each line is one reading, e.g. {")
    assert reasons[2].startswith("value: 'x' is not a number")
