"""Telemetra's Python SDK: ``DeviceClient`` for devices (readings, heartbeats, commands, over
HTTP or MQTT) and ``UserClient`` for people and scripts (login, queries, exports).

It needs only httpx and paho-mqtt, never the server's own modules::

    from telemetra.client import DeviceClient, UserClient

    api = UserClient("http://127.0.0.1:8000")
    api.login("alice", "correct horse battery")
    device = api.create_device("boiler-1")
    with DeviceClient("http://127.0.0.1:8000", device.id, device.api_key) as client:
        client.send({"temperature": 21.5})
    print(api.latest(device_id=device.id))
"""

from telemetra.client.device import DeviceClient
from telemetra.client.errors import ApiError, ClientError, Closed, Unreachable
from telemetra.client.links import HttpLink, MqttLink
from telemetra.client.models import (
    AggregateRow,
    Command,
    DeviceCredentials,
    DeviceStatus,
    Measurement,
    Reading,
    Rejection,
    SendResult,
    TokenPair,
)
from telemetra.client.retry import Backoff
from telemetra.client.user import UserClient

__all__ = ["AggregateRow", "ApiError", "Backoff", "ClientError", "Closed", "Command",
           "DeviceClient", "DeviceCredentials", "DeviceStatus", "HttpLink", "Measurement",
           "MqttLink", "Reading", "Rejection", "SendResult", "TokenPair", "Unreachable",
           "UserClient"]
