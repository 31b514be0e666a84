"""POST /readings documents its formats briefly, with an example each; a body that is none of
them is a 422 listing them once."""

import pytest

from telemetra.app import create_app
from tests.conftest import make_settings
from tests.helpers import device_key

EXAMPLES = ['{"temperature": 23.5, "humidity": 60}', '"values": {"temperature": 23.5}',
            '"data": {"temperature": 23.5}', '{"readings": [{"key": "temperature"',
            '{"sensor_type": "temperature"', '"value": [157, 42, 76, 190]', '{"sensor_id": 12']


@pytest.mark.parametrize("path", ["/api/v1/readings", "/api/v1/devices/{device_id}/readings"])
def test_the_openapi_text_describes_each_format_with_an_example(path):
    operation = create_app(make_settings("sqlite:///never-opened.db")).openapi()[
        "paths"][path]["post"]
    text = operation["requestBody"]["description"]
    assert "API guide" not in text and "API guide" not in operation["description"]
    for example in EXAMPLES:
        assert text.count(example) == 1, example
    assert len(operation["requestBody"]["content"]["application/json"]["examples"]) == 7


@pytest.mark.parametrize("body", [b"nope", b"[1, 2]", b'"text"'])
def test_a_body_that_is_no_format_lists_the_formats_once(api, root, body):
    key = api.device(root)["api_key"]
    response = api.post("/readings", {**device_key(key), "Content-Type": "application/json"},
                        content=body)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert response.text.count("sensor_id") == 1, response.text  # the last format, once
    assert "expected one of" in problem["detail"]
    assert [error["msg"] for error in problem["errors"]] == [problem["detail"].split(";")[0]]
    assert problem["errors"][0]["loc"] == ["body"]
