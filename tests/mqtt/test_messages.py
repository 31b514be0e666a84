"""MQTT payloads are bounded as HTTP bodies are: a payload nested deeper than 32 is rejected
before any parser or validator recurses into it, and free-form fields are bounded."""

import pytest
from pydantic import ValidationError

from telemetra.devices.schemas import Heartbeat
from telemetra.mqtt.messages import Rejected, json_body


def test_a_deep_payload_is_rejected_before_parsing():
    with pytest.raises(Rejected, match="nested deeper than 32"):
        json_body(b"[" * 5000 + b"]" * 5000)
    assert json_body(b'{"t": [[1]]}') == {"t": [[1]]}


def test_a_heartbeat_payload_with_deep_extra_fields_is_invalid():
    with pytest.raises(ValidationError, match="deeper than 16"):
        Heartbeat.model_validate(json_body(b'{"x": ' + b"[" * 20 + b"]" * 20 + b"}"))
