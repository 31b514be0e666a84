"""The platform's connection to the broker: paho-mqtt 2 driven by the asyncio event loop,
with manual acknowledgements and flow control.

Why paho-mqtt: it can hold back a QoS 1 PUBACK until the message's readings are committed
(``manual_ack``) and it speaks MQTT 5. aiomqtt (which also drives paho from asyncio)
acknowledges on receipt and drops messages when its queue is full; gmqtt acknowledges when a
handler returns, with no bound on the handlers it starts. paho's socket is read from the event
loop (as aiomqtt does), not from paho's own thread, which under load starves for the GIL.

Flow control: once ``receive_maximum`` messages await acknowledgement, the socket is no longer
read, so TCP pushes back and the broker holds the messages (it queues them for our persistent
session). The same number goes to the broker as MQTT 5 Receive Maximum, but Mosquitto 2.0
lets more through once acknowledgements flow, so the bound is kept here.

Keep-alive under load: while reading is held back, the broker's PINGRESP waits unread behind
the messages, and paho would count it lost and drop a live connection after one keep-alive
period (measured: a reconnect, and a thousand redeliveries, each time a slow database held
the link back that long). While bytes wait unread, the link tells paho it heard from the
broker; paho's PINGREQs still go out, so the broker hears from us.

Acknowledgements are only sent on the connection a message arrived on: after a reconnect,
packet ids are reused, so a late PUBACK could acknowledge a different, uncommitted message.
The broker redelivers whatever was not acknowledged.
"""

import asyncio
import logging
import select
import ssl
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


READ_CHUNK = 65536


class _Client(paho.Client):
    """paho reads each packet's header a byte at a time, three or more ``recv`` calls a
    message; this reads the socket in chunks and hands paho the bytes from memory (its
    parser already copes with short reads). Tied to paho-mqtt 2.2's ``_sock_recv``, which is
    pinned."""

    _buffer = memoryview(b"")

    def _sock_recv(self, bufsize: int) -> bytes:
        if not self._buffer:
            chunk = super()._sock_recv(READ_CHUNK)  # raises BlockingIOError when empty
            if not chunk:
                return chunk  # closed by the broker
            self._buffer = memoryview(chunk)
        data, self._buffer = self._buffer[:bufsize], self._buffer[bufsize:]
        return bytes(data)

    def buffered(self) -> bool:
        return bool(self._buffer)

    def heard_from_broker(self) -> None:
        """The broker has sent bytes that are still unread, on purpose (flow control): for
        the keep-alive that is as good as reading them. paho otherwise counts a PINGRESP
        queued behind unread messages as never come, and drops a live connection after one
        keep-alive period of holding back. Its PINGREQs still go out, so the broker hears
        from us. Tied to paho-mqtt 2.2's ``_last_bytes_received``, like ``_sock_recv``."""
        with self._msgtime_mutex:
            self._last_bytes_received = paho.time_func()

    def drop_buffer(self) -> None:
        self._buffer = memoryview(b"")


class Link:
    """One MQTT connection, reconnected with back-off for as long as it runs. Messages reach
    ``on_messages`` on the event loop, those read together in one list; ``on_connected``
    runs after each (re)connection once the broker has confirmed the subscriptions."""

    def __init__(self, address: BrokerAddress, *, client_id: str, receive_maximum: int,
                 session_expiry_seconds: int, on_messages: Callable[[list[Inbound]], None],
                 on_connected: Callable[[bool], None], on_disconnected: Callable[[], None],
                 ca_file: str | None = None,
                 keepalive_seconds: int = KEEPALIVE_SECONDS) -> None:
        self.address = address
        self.keepalive_seconds = keepalive_seconds
        self.client_id = client_id
        self.receive_maximum = receive_maximum
        self._on_messages = on_messages
        self._batch: list[Inbound] = []
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._filters: set[str] = set()
        self._connection = 0
        self._connected = False
        self._ready = False
        self._ready_mid: int | None = None
        self._session_present = False
        self._stopping = False
        self._unacked = 0
        self._paused = False
        self._received = 0
        self._ready_seen = False
        self._resumed = False
        self._ever_ready = False
        self._sock = None
        self._lost: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        client = _Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=MQTTProtocolVersion.MQTTv5, manual_ack=True)
        if address.username is not None:
            client.username_pw_set(address.username, address.password)
        if address.tls:
            client.tls_set_context(ssl.create_default_context(cafile=ca_file))
        client.max_queued_messages_set(0)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        client.on_subscribe = self._handle_subscribe
        client.on_socket_open = self._socket_open
        client.on_socket_close = self._socket_close
        client.on_socket_register_write = self._register_write
        client.on_socket_unregister_write = self._unregister_write
        self._client = client
        self._properties = Properties(PacketTypes.CONNECT)
        self._properties.SessionExpiryInterval = session_expiry_seconds
        self._properties.ReceiveMaximum = receive_maximum

    @property
    def connected(self) -> bool:
        """Connected, with the subscriptions in place: confirmed by the broker on this
        connection, or kept by it in the session it resumed (their confirmation may then
        come behind hundreds of redelivered messages, which are already flowing)."""
        return self._connected and (self._ready or self._resumed)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="mqtt-link")

    async def stop(self) -> None:
        self._stopping = True
        if self._connected:
            self._client.disconnect()
        if self._task is not None:
            try:
                async with asyncio.timeout(3):
                    await asyncio.shield(self._task)
            except TimeoutError:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
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
        if message.qos == 0 or not self.current(message):
            return
        self._client.ack(message.mid, message.qos)
        self._unacked -= 1
        if self._paused and self._unacked <= self.receive_maximum // 2:
            self._resume()

    def current(self, message: Inbound) -> bool:
        """Whether the message's connection is still up (so it can still be acknowledged)."""
        return message.connection == self._connection and self._connected

    # -- the connection loop -------------------------------------------------------------

    async def _run(self) -> None:
        delay = RECONNECT_MIN_SECONDS
        loop = asyncio.get_running_loop()
        while not self._stopping:
            self._lost = asyncio.Event()
            try:
                await loop.run_in_executor(None, self._connect)
            except (OSError, ssl.SSLError, ValueError) as exc:
                log.warning("MQTT broker %s unreachable (%s); retrying in %ss", self.address,
                            exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_SECONDS)
                continue
            misc = asyncio.create_task(self._misc())
            await self._lost.wait()
            misc.cancel()
            if self._stopping:
                break
            delay = RECONNECT_MIN_SECONDS if self._ready_seen else min(
                delay * 2, RECONNECT_MAX_SECONDS)
            await asyncio.sleep(delay)

    def _connect(self) -> None:
        """Blocking (DNS, TCP, TLS): runs in a thread; the socket is then the loop's."""
        self._ready_seen = False
        self._client.drop_buffer()
        self._client.connect(self.address.host, self.address.port, self.keepalive_seconds,
                             clean_start=False, properties=self._properties)

    async def _misc(self) -> None:
        while True:
            if self._paused and self._unread():
                self._client.heard_from_broker()
            if self._client.loop_misc() != paho.MQTT_ERR_SUCCESS:  # keepalive pings
                return
            await asyncio.sleep(min(1.0, self.keepalive_seconds / 4))

    def _unread(self) -> bool:
        """Whether the broker has sent what the link has not read yet (it holds reading
        back): bytes in memory or in the socket's receive buffer."""
        if self._pending():
            return True
        sock = self._client.socket()
        if sock is None:
            return False
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):  # closed meanwhile
            return False
        return bool(readable)

    def _readable(self) -> None:
        try:
            self._read()
        finally:
            if self._batch:
                batch, self._batch = self._batch, []
                self._on_messages(batch)

    def _read(self) -> None:
        # Read what has arrived, a bounded number of packets, then let others run.
        for _ in range(256):
            before = self._received
            try:
                self._client.loop_read()
            except Exception as exc:  # a broken socket: the connection is lost
                log.warning("MQTT read failed (%s)", type(exc).__name__)
                self._socket_close(None, None, None)
                self._connected = self._ready = self._resumed = False
                self._connection += 1
                self._lost_now()
                return
            if self._paused or (self._received == before and not self._pending()):
                return
        if self._pending():  # read later what is already in memory: no socket event comes
            self._loop.call_soon(self._readable)

    def _pending(self) -> bool:
        sock = self._client.socket()
        return self._client.buffered() or (hasattr(sock, "pending") and sock.pending() > 0)

    def _writable(self) -> None:
        try:
            self._client.loop_write()
        except Exception as exc:
            log.warning("MQTT write failed (%s)", type(exc).__name__)

    def _pause(self) -> None:
        if not self._paused and self._sock is not None:
            self._paused = True
            self._loop.remove_reader(self._sock)

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            if self._sock is not None:
                self._loop.add_reader(self._sock, self._readable)
                if self._pending():
                    self._loop.call_soon(self._readable)

    def _lost_now(self) -> None:
        if self._lost is not None:
            self._lost.set()

    # -- paho callbacks (on the event loop, except socket open/write during connect) ------

    def _socket_open(self, client, userdata, sock) -> None:
        self._loop.call_soon_threadsafe(self._watch, sock)

    def _watch(self, sock) -> None:
        self._sock = sock
        self._paused = False
        self._loop.add_reader(sock, self._readable)

    def _socket_close(self, client, userdata, sock) -> None:
        if self._sock is not None:
            self._loop.remove_reader(self._sock)
            self._loop.remove_writer(self._sock)
            self._sock = None

    def _register_write(self, client, userdata, sock) -> None:
        self._loop.call_soon_threadsafe(self._loop.add_writer, sock, self._writable)

    def _unregister_write(self, client, userdata, sock) -> None:
        self._loop.remove_writer(sock)

    def _handle_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("MQTT broker %s refused the connection: %s", self.address, reason_code)
            return
        self._connection += 1
        self._connected = True
        self._unacked = 0
        self._session_present = bool(flags.session_present)
        self._resumed = self._session_present and self._ever_ready
        if self._filters:
            _, self._ready_mid = client.subscribe(
                [(f, SubscribeOptions(qos=1)) for f in sorted(self._filters)])
        else:
            self._set_ready()
        log.info("MQTT connected to %s as %s (session present: %s)", self.address,
                 self.client_id, flags.session_present)

    def _handle_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        refused = [code for code in reason_codes if code.is_failure]
        if refused:
            log.error("MQTT broker refused %d subscription(s): %s", len(refused),
                      ", ".join(str(code) for code in refused))
        if mid == self._ready_mid and not self._ready:
            self._set_ready()

    def _set_ready(self) -> None:
        self._ready = True
        self._ready_seen = True
        self._ever_ready = True
        self._on_connected(self._session_present)

    def _handle_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        was_connected = self._connected
        self._connected = False
        self._ready = self._resumed = False
        self._connection += 1
        if was_connected and not self._stopping:
            log.warning("MQTT connection to %s lost (%s); reconnecting", self.address,
                        reason_code)
            self._on_disconnected()
        self._lost_now()

    def _handle_message(self, client, userdata, message) -> None:
        self._received += 1
        if message.qos:
            self._unacked += 1
            if self._unacked >= self.receive_maximum:
                self._pause()
        self._batch.append(Inbound(message.topic, message.payload, message.qos, message.mid,
                                   self._connection))
