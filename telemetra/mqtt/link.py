"""The platform's connection to the broker: paho-mqtt 2 on its own network thread, with
manual acknowledgements, handed to asyncio.

Why paho-mqtt: it can hold back a QoS 1 PUBACK until the message's readings are committed
(``manual_ack``), it speaks MQTT 5, whose Receive Maximum makes the broker stop sending once
that many messages await our acknowledgement (flow control without an unbounded buffer), and
it reconnects by itself with back-off. aiomqtt acknowledges on receipt and drops messages
when its queue is full; gmqtt acknowledges when a handler returns, with no bound on the
handlers it starts.

Acknowledgements are only sent on the connection a message arrived on: after a reconnect,
packet ids are reused, so a late PUBACK could acknowledge a different, uncommitted message.
The broker redelivers whatever was not acknowledged.
"""

import asyncio
import logging
import ssl
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

log = logging.getLogger("telemetra.mqtt")

KEEPALIVE_SECONDS = 30
RECONNECT_MIN_SECONDS = 1
RECONNECT_MAX_SECONDS = 30


@dataclass(frozen=True, slots=True)
class Inbound:
    """A message from the broker, to be acknowledged once handled."""

    topic: str
    payload: bytes
    qos: int
    mid: int
    connection: int  # which connection it arrived on


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> "BrokerAddress":
        parts = urlsplit(url)
        tls = parts.scheme == "mqtts"
        return cls(host=parts.hostname or "127.0.0.1", port=parts.port or (8883 if tls else 1883),
                   tls=tls, username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password else None)

    def __repr__(self) -> str:  # never show the password
        return f"BrokerAddress({self.host}:{self.port}, tls={self.tls}, user={self.username})"


class Link:
    """One MQTT connection. Messages reach ``on_message`` on the event loop; ``on_connected``
    runs on the loop after each (re)connection, once subscriptions are requested."""

    def __init__(self, address: BrokerAddress, *, client_id: str, receive_maximum: int,
                 session_expiry_seconds: int, on_message: Callable[[Inbound], None],
                 on_connected: Callable[[bool], None], on_disconnected: Callable[[], None],
                 ca_file: str | None = None) -> None:
        self.address = address
        self.client_id = client_id
        self._on_message = on_message
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._filters: set[str] = set()
        self._lock = threading.Lock()
        self._connection = 0
        self._connected = False
        self._stopping = False
        self._ready = False
        self._ready_mid: int | None = None
        self._inbox: deque[Inbound] = deque()
        self._wake_pending = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                   protocol=MQTTProtocolVersion.MQTTv5, manual_ack=True)
        if address.username is not None:
            self._client.username_pw_set(address.username, address.password)
        if address.tls:
            self._client.tls_set_context(ssl.create_default_context(cafile=ca_file))
        self._client.reconnect_delay_set(RECONNECT_MIN_SECONDS, RECONNECT_MAX_SECONDS)
        self._client.max_queued_messages_set(0)
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_message = self._handle_message
        self._client.on_subscribe = self._handle_subscribe
        self._properties = Properties(PacketTypes.CONNECT)
        self._properties.SessionExpiryInterval = session_expiry_seconds
        self._properties.ReceiveMaximum = receive_maximum

    @property
    def connected(self) -> bool:
        """Connected, with the subscriptions confirmed by the broker."""
        return self._connected and self._ready

    def start(self) -> None:
        """Connect in the background; retried with back-off for as long as it runs."""
        self._loop = asyncio.get_running_loop()
        self._client.connect_async(self.address.host, self.address.port, KEEPALIVE_SECONDS,
                                   clean_start=False, properties=self._properties)
        self._client.loop_start()

    async def stop(self) -> None:
        self._stopping = True
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)
        self._connected = False

    def subscribe(self, filters: list[str]) -> None:
        new = [f for f in filters if f not in self._filters]
        self._filters.update(new)
        if new and self._connected:
            self._client.subscribe([(f, SubscribeOptions(qos=1)) for f in new])

    def unsubscribe(self, filters: list[str]) -> None:
        gone = [f for f in filters if f in self._filters]
        self._filters.difference_update(gone)
        if gone and self._connected:
            self._client.unsubscribe(gone)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Queue a message; QoS 1 messages wait for the connection and are resent."""
        self._client.publish(topic, payload, qos=qos)

    def ack(self, message: Inbound) -> None:
        if message.qos == 0:
            return
        with self._lock:
            if message.connection == self._connection and self._connected:
                self._client.ack(message.mid, message.qos)

    def current(self, message: Inbound) -> bool:
        """Whether the message's connection is still up (so it can still be acknowledged)."""
        return message.connection == self._connection and self._connected

    # -- on paho's network thread --------------------------------------------------------

    def _handle_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("MQTT broker %s refused the connection: %s", self.address, reason_code)
            return
        with self._lock:
            self._connection += 1
            self._connected = True
        if self._filters:
            _, self._ready_mid = client.subscribe(
                [(f, SubscribeOptions(qos=1)) for f in sorted(self._filters)])
        else:
            self._ready = True
        log.info("MQTT connected to %s as %s (session present: %s)", self.address,
                 self.client_id, flags.session_present)
        self._call_soon(self._on_connected, bool(flags.session_present))

    def _handle_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._lock:
            was_connected = self._connected
            self._connected = False
            self._ready = False
            self._connection += 1
        if was_connected and not self._stopping:
            log.warning("MQTT connection to %s lost (%s); reconnecting", self.address,
                        reason_code)
            self._call_soon(self._on_disconnected)

    def _handle_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        refused = [code for code in reason_codes if code.is_failure]
        if refused:
            log.error("MQTT broker refused %d subscription(s): %s", len(refused),
                      ", ".join(str(code) for code in refused))
        if mid == self._ready_mid:
            self._ready = True

    def _handle_message(self, client, userdata, message) -> None:
        inbound = Inbound(message.topic, message.payload, message.qos, message.mid,
                          self._connection)
        with self._lock:
            self._inbox.append(inbound)
            wake = not self._wake_pending
            self._wake_pending = True
        if wake:
            self._call_soon(self._drain)

    def _call_soon(self, callback, *args) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(callback, *args)
            except RuntimeError:  # the loop closed meanwhile (shutdown)
                pass

    def _drain(self) -> None:
        with self._lock:
            batch = list(self._inbox)
            self._inbox.clear()
            self._wake_pending = False
        for inbound in batch:
            self._on_message(inbound)
