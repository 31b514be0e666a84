"""How a device reaches the platform: over HTTP (httpx) or through an MQTT broker (paho).
Both links offer the same few operations to ``DeviceClient``; neither retries (the client
does, with its ``Backoff``)."""

import json
import logging
import queue
import threading
import uuid
from collections import OrderedDict
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import httpx

from telemetra.client import wire
from telemetra.client.errors import ApiError, Unreachable
from telemetra.client.models import Command, DeviceStatus, Rejection, SendResult

log = logging.getLogger("telemetra.client")


class Link(Protocol):
    def send(self, body: dict, count: int) -> SendResult: ...
    def heartbeat(self, fields: dict[str, Any]) -> DeviceStatus | None: ...
    def commands(self, timeout: float) -> list[Command]: ...
    def report(self, command_id: int, status: str, result: Any) -> None: ...
    def close(self) -> None: ...


def _rejections(items) -> tuple[Rejection, ...]:
    return tuple(Rejection(r["index"], r["reason"], r.get("key")) for r in items or ())


class HttpLink:
    """The device's key on every request (``X-API-Key``)."""

    def __init__(self, base_url: str, device_id: int, api_key: str, *, timeout: float = 10.0,
                 http: httpx.Client | None = None) -> None:
        self.device_id = device_id
        self._base = wire.api_base(base_url)
        self._own = http is None
        self._http = http or httpx.Client(timeout=timeout)
        self._headers = {"X-API-Key": api_key}

    def _call(self, method: str, path: str, **kwargs) -> httpx.Response:
        return wire.request(self._http, method, self._base + path, headers=self._headers,
                            **kwargs)

    def send(self, body: dict, count: int) -> SendResult:
        try:
            data = self._call("POST", f"/devices/{self.device_id}/readings", json=body).json()
        except ApiError as exc:
            # Every reading refused: a 422 carrying the same list a partial refusal would.
            if exc.status == 422 and "rejected" in exc.problem:
                return SendResult(count, 0, 0, _rejections(exc.problem["rejected"]))
            raise
        return SendResult(count, data["accepted"], data["duplicates"],
                          _rejections(data["rejected"]))

    def heartbeat(self, fields: dict[str, Any]) -> DeviceStatus:
        return DeviceStatus.from_json(self._call(
            "POST", f"/devices/{self.device_id}/heartbeat", json=fields or None).json())

    def commands(self, timeout: float = 0) -> list[Command]:
        """Pending commands, which become ``delivered`` by being fetched (``timeout`` is not
        used: an HTTP poll answers at once)."""
        data = self._call("GET", f"/devices/{self.device_id}/commands",
                          params={"limit": 100}).json()
        return [Command.from_json(item) for item in data["items"]]

    def report(self, command_id: int, status: str, result: Any) -> None:
        body: dict[str, Any] = {"status": status}
        if result is not None:
            body["result"] = result
        self._call("PATCH", f"/devices/{self.device_id}/commands/{command_id}", json=body)

    def close(self) -> None:
        if self._own:
            self._http.close()


class MqttLink:
    """MQTT 5 through the platform's broker: login ``<device id>`` / ``<key>`` (how the
    platform provisions devices on a broker with dynamic security; an open development broker
    ignores it), readings and heartbeats published QoS 1 under the device's own topics,
    commands received on ``<prefix>/devices/<id>/commands``. On every (re)connection the link
    says ``online`` on its status topic, so the platform sends again the commands still queued;
    a last will says ``offline``. Commands received are reported ``delivered`` at once."""

    def __init__(self, mqtt_url: str, device_id: int, api_key: str, *,
                 prefix: str = "telemetra", timeout: float = 10.0,
                 client_id: str | None = None, keepalive: int = 30) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

        self.device_id = device_id
        self.timeout = timeout
        self._topic = f"{prefix}/devices/{device_id}"
        self._commands: queue.Queue[Command] = queue.Queue()
        self._seen: OrderedDict[int, None] = OrderedDict()  # QoS 1 may deliver twice
        self._connected = threading.Event()
        url = urlsplit(mqtt_url)
        if url.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(f"an MQTT URL is mqtt://host:port or mqtts://host:port, not "
                             f"{mqtt_url!r}")
        client = paho.Client(CallbackAPIVersion.VERSION2,
                             client_id=client_id or f"device-{device_id}-{uuid.uuid4().hex[:6]}",
                             protocol=MQTTProtocolVersion.MQTTv5)
        client.username_pw_set(unquote(url.username) if url.username else str(device_id),
                               unquote(url.password) if url.password else api_key)
        if url.scheme in ("mqtts", "ssl"):
            client.tls_set()
        client.will_set(f"{self._topic}/status", "offline", qos=1)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client
        client.connect_async(url.hostname or "127.0.0.1",
                             url.port or (8883 if url.scheme in ("mqtts", "ssl") else 1883),
                             keepalive=keepalive)
        client.loop_start()

    def wait_connected(self, timeout: float | None = None) -> bool:
        return self._connected.wait(self.timeout if timeout is None else timeout)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("MQTT broker refused device %s: %s", self.device_id, reason_code)
            return
        client.subscribe(f"{self._topic}/commands", qos=1)
        client.publish(f"{self._topic}/status", "online", qos=1)
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()

    def _on_message(self, client, userdata, message) -> None:
        try:
            command = Command.from_json(json.loads(message.payload))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignored a command message that is not one (%s): %r", exc,
                        message.payload[:200])
            return
        if command.id in self._seen:
            return
        self._seen[command.id] = None
        while len(self._seen) > 10_000:
            self._seen.popitem(last=False)
        self._commands.put(command)
        self._publish(f"commands/{command.id}/result", {"status": "delivered"}, wait=False)

    def _publish(self, kind: str, payload: Any, *, wait: bool = True) -> None:
        if not self._connected.is_set() and not self.wait_connected():
            raise Unreachable(f"MQTT broker not connected (device {self.device_id})")
        text = payload if isinstance(payload, str) else json.dumps(payload)
        info = self._client.publish(f"{self._topic}/{kind}", text, qos=1)
        if not wait:
            return
        try:
            info.wait_for_publish(self.timeout)
        except (RuntimeError, ValueError) as exc:
            raise Unreachable(f"MQTT publish failed: {exc}") from exc
        if not info.is_published():
            raise Unreachable(f"MQTT broker did not acknowledge within {self.timeout}s")

    def send(self, body: dict, count: int) -> SendResult:
        self._publish("readings", body)
        return SendResult(count, None, None)

    def heartbeat(self, fields: dict[str, Any]) -> None:
        self._publish("heartbeat", fields or {})

    def commands(self, timeout: float = 0) -> list[Command]:
        """Commands received since the last call, waiting up to ``timeout`` for the first."""
        found: list[Command] = []
        try:
            found.append(self._commands.get(timeout=timeout) if timeout > 0
                         else self._commands.get_nowait())
            while True:
                found.append(self._commands.get_nowait())
        except queue.Empty:
            return found

    def report(self, command_id: int, status: str, result: Any) -> None:
        body: dict[str, Any] = {"status": status}
        if result is not None:
            body["result"] = result
        self._publish(f"commands/{command_id}/result", body)

    def close(self) -> None:
        if self._connected.is_set():
            # A clean goodbye: the will is not sent, so say offline ourselves.
            self._client.publish(f"{self._topic}/status", "offline", qos=1).wait_for_publish(2)
        self._client.disconnect()
        self._client.loop_stop()
