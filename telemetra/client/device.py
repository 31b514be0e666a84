"""``DeviceClient``: what a device (or a gateway, or a simulator) needs from the platform."""

import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx

from telemetra.client.links import HttpLink, Link, MqttLink
from telemetra.client.models import Command, DeviceStatus, Measurement, SendResult, Value, utc
from telemetra.client.retry import Backoff

log = logging.getLogger("telemetra.client")

CommandHandler = Callable[[Command], Any]


def _checked(measurement: Measurement) -> Measurement:
    value = measurement.value
    if isinstance(value, bool) or (isinstance(value, int | float) and math.isfinite(value)):
        return measurement
    raise ValueError(f"{measurement.key}: {value!r} is not a finite number or a boolean")


class DeviceClient:
    """A device's connection to Telemetra, over HTTP or MQTT.

    Readings are *recorded* into a buffer, each timed when it is recorded (or with the time
    given), and *flushed* in batches. A batch that cannot be sent (the platform or the broker
    unreachable, a 429 or a 5xx) is tried again with exponential back-off and jitter, with the
    very same timestamps: a retry of a batch that was in fact stored comes back as duplicates,
    never as a second copy, and a reading taken during an outage keeps the time it was taken.
    What is still unsent when the attempts run out stays buffered for the next flush (at most
    ``max_buffer`` readings; past that the oldest are dropped and counted in ``dropped``).

    Over HTTP::

        from telemetra.client import DeviceClient

        with DeviceClient("http://127.0.0.1:8000", device_id=7, api_key="tdk_...") as device:
            device.record({"temperature": 21.5, "humidity": 48})   # timed now
            device.record({"temperature": 21.4}, ts=1767268800)    # timed by the device
            result = device.flush()                                # one request, retried
            print(result.accepted, result.duplicates, result.rejected)
            device.heartbeat(firmware_version="1.2.0")
            device.handle_commands(lambda command: {"ok": command.name})

    Over MQTT (the broker the platform is connected to; the login is the device id and key)::

        device = DeviceClient.over_mqtt("mqtt://broker:1883", device_id=7, api_key="tdk_...")
        device.send({"temperature": 21.5})                         # record + flush
        for command in device.commands(timeout=5):                 # pushed by the platform
            device.report(command, "succeeded", {"rebooted": True})
        device.close()
    """

    def __init__(self, base_url: str | None, device_id: int, api_key: str, *,
                 link: Link | None = None, batch_size: int = 500, max_buffer: int = 100_000,
                 backoff: Backoff = Backoff(), timeout: float = 10.0,
                 http: httpx.Client | None = None) -> None:
        if link is None:
            if base_url is None:
                raise ValueError("give the platform's base_url, or a link")
            link = HttpLink(base_url, device_id, api_key, timeout=timeout, http=http)
        self.device_id = device_id
        self.link = link
        self.batch_size = batch_size
        self.backoff = backoff
        self.dropped = 0
        self.max_buffer = max_buffer
        self._buffer: deque[Measurement] = deque()
        self._lock = threading.Lock()  # guards the buffer, held briefly: recording never waits
        self._flushing = threading.Lock()  # one flush at a time, so batches go out in order
        self._in_flight = 0
        self._closed = threading.Event()

    @classmethod
    def over_mqtt(cls, mqtt_url: str, device_id: int, api_key: str, *,
                  prefix: str = "telemetra", timeout: float = 10.0, **options
                  ) -> "DeviceClient":
        """A device speaking MQTT 5 (``mqtt://host:port`` or ``mqtts://``), topic prefix as
        the platform's ``TELEMETRA_MQTT_PREFIX``."""
        link = MqttLink(mqtt_url, device_id, api_key, prefix=prefix, timeout=timeout)
        return cls(None, device_id, api_key, link=link, timeout=timeout, **options)

    # -- readings ---------------------------------------------------------------------------

    def record(self, values: Mapping[str, Value] | None = None, *,
               ts: datetime | float | None = None, unit: str | None = None,
               units: Mapping[str, str] | None = None, tags: Iterable[str] = (),
               **more: Value) -> None:
        """Buffer readings, one per key, all with time ``ts`` (a datetime, naive meaning UTC,
        or epoch seconds), or now: the time is fixed here, when the value was taken.

        >>> device.record({"temperature": 21.5}, units={"temperature": "°C"})
        >>> device.record(humidity=48, ts=datetime(2026, 1, 1, 12, tzinfo=UTC))
        """
        when = datetime.now(UTC) if ts is None else utc(ts)
        items = {**(values or {}), **more}
        if not items:
            raise ValueError("record at least one value")
        tag_tuple = tuple(tags)
        self.add(Measurement(key, value, when, (units or {}).get(key, unit), tag_tuple)
                 for key, value in items.items())

    def add(self, measurements: Iterable[Measurement]) -> None:
        """Buffer readings already timed (``Measurement`` values). A value that is not a
        finite number or a boolean is a ``ValueError`` here, not a batch that can never be
        sent."""
        checked = [_checked(m) for m in measurements]
        with self._lock:
            self._buffer.extend(checked)
            while len(self._buffer) > self.max_buffer:
                self._buffer.popleft()
                self.dropped += 1

    @property
    def pending(self) -> int:
        """Readings recorded and not yet sent."""
        return len(self._buffer) + self._in_flight

    def flush(self) -> SendResult:
        """Send everything buffered, ``batch_size`` readings a request, oldest first. A batch
        leaves the buffer only once the platform (or the broker, over MQTT) has it; when the
        attempts run out, the error is raised and that batch and those after it stay buffered,
        times unchanged, for the next flush."""
        total = SendResult()
        with self._flushing:
            while batch := self._take():
                offset = total.sent
                body = {"readings": [m.as_json() for m in batch]}
                self._in_flight = len(batch)
                try:
                    result = self.backoff.run(lambda: self.link.send(body, len(batch)),
                                              self._closed,
                                              what=f"device {self.device_id} readings")
                except BaseException:
                    with self._lock:  # back in front, as they were: order and times kept
                        self._buffer.extendleft(reversed(batch))
                    raise
                finally:
                    self._in_flight = 0
                if offset:  # indices into what this flush sent, not into its last batch
                    result = replace(result, rejected=tuple(
                        replace(r, index=r.index + offset) for r in result.rejected))
                total = total + result
                if result.rejected:
                    log.warning("device %s: %d reading(s) rejected: %s", self.device_id,
                                len(result.rejected),
                                "; ".join(sorted({r.reason for r in result.rejected})))
        return total

    def discard(self) -> list[Measurement]:
        """Empty the buffer and return what was in it (say, after an error that retrying
        cannot cure, such as a 413 for a batch too large for the platform)."""
        with self._lock:
            dropped = list(self._buffer)
            self._buffer.clear()
        return dropped

    def _take(self) -> list[Measurement]:
        with self._lock:
            return [self._buffer.popleft()
                    for _ in range(min(self.batch_size, len(self._buffer)))]

    def send(self, values: Mapping[str, Value] | None = None, *,
             ts: datetime | float | None = None, **options) -> SendResult:
        """``record`` then ``flush``: readings sent at once (with anything still buffered)."""
        self.record(values, ts=ts, **options)
        return self.flush()

    # -- presence and commands --------------------------------------------------------------

    def heartbeat(self, **fields: Any) -> DeviceStatus | None:
        """Tell the platform the device is alive; optional ``status``, ``firmware_version``,
        ``metadata``, and any other field (merged into the device's metadata). Over HTTP the
        answer is the device's status as the platform now sees it; over MQTT None."""
        return self.backoff.run(lambda: self.link.heartbeat(fields), self._closed, what="heartbeat")

    def commands(self, timeout: float = 0) -> list[Command]:
        """Commands for this device, now ``delivered``: over HTTP a poll, over MQTT those the
        broker pushed since the last call (waiting up to ``timeout`` seconds for one)."""
        return self.backoff.run(lambda: self.link.commands(timeout), self._closed,
                                what="commands")

    def report(self, command: Command | int, status: str = "succeeded",
               result: Any = None) -> None:
        """Answer a command: ``succeeded`` or ``failed``, with any JSON ``result``."""
        command_id = command.id if isinstance(command, Command) else command
        self.backoff.run(lambda: self.link.report(command_id, status, result), self._closed,
                         what=f"command {command_id} report")

    def handle_commands(self, handler: CommandHandler, timeout: float = 0) -> list[Command]:
        """Fetch the pending commands and run ``handler`` on each: what it returns is reported
        as the ``succeeded`` result, an exception as ``failed`` with ``{"error": ...}``.

        >>> def handler(command):
        ...     if command.name != "set_interval":
        ...         raise ValueError(f"unknown command {command.name}")
        ...     return {"interval": command.params["seconds"]}
        >>> device.handle_commands(handler)
        """
        handled = self.commands(timeout)
        for command in handled:
            try:
                result = handler(command)
            except Exception as exc:  # the device's own code failed: the platform hears why
                self.report(command, "failed", {"error": str(exc) or type(exc).__name__})
            else:
                self.report(command, "succeeded", result)
        return handled

    def close(self) -> None:
        """Stop waiting to retry and close the connection; unsent readings are not sent."""
        self._closed.set()
        self.link.close()

    def __enter__(self) -> "DeviceClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
