"""The live sockets' WebSocket protocol: a message shared by many sockets becomes its frame's
bytes once, compressed or not, and is written to each socket in the pusher's step.

A readings message goes to every socket subscribed to its device: with 200 dashboards on one
device, the server framed and wrote 200 copies of each message, and on a small machine that,
not the readings' ingestion, was the cost. Three things make a shared message cheap:

- **Compressed once.** permessage-deflate shrinks readings about twelve times, but each socket
  compressing its own copy cost more than the copy. The server negotiates
  ``server_no_context_takeover``: each message is compressed on its own, so its compressed
  bytes depend on the message alone. A client that offers no compression gets plain frames.
- **Framed once.** A server's frames are not masked, so two sockets with the same extension
  settings send a message as the same bytes: ``FRAMES`` remembers the last messages' frames
  by the identity of the message (the hub's ``SharedText``, one object for all its sockets)
  and those settings, and each socket writes them as they are.
- **Written at once.** The protocol puts a ``LiveWriter`` in the ASGI scope's extensions
  (``WRITER``): ``now(text)`` writes the frame in the caller's step when the socket takes it
  without waiting, and answers ``False`` (nothing written) when it would wait (its buffer is
  full, it is not open); ``send(text)`` waits for the socket first. The hub's fan-out uses
  ``now``, so a flush to 200 sockets is 200 writes in one step rather than 200 sender tasks
  woken, each through Starlette's and the ASGI layers' sends (``outbox``).

``uvicorn.run(ws="telemetra.live.deflate:SharedDeflateProtocol")``: an import string, so that
every worker process of ``--workers N`` loads it. Under another server the scope has no
``WRITER``, and the sockets send through Starlette as any application does.
"""

import logging
from collections import OrderedDict

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import TEXT, Frame
from websockets.protocol import OPEN
from websockets.server import ServerProtocol

WRITER = "telemetra.live_writer"  # the scope extension: a LiveWriter
# Messages shorter than this are framed per socket as usual (pongs, acks: not shared, and too
# short to gain from sharing).
SHARE_FROM_BYTES = 512
# Frames remembered, newest last: a flush sends each subscription's message to all its
# sockets in one pass, so a few are enough.
_REMEMBERED = 64
# uvicorn's own settings for the extension (a small window: little memory a socket).
WINDOW_BITS = 12
COMPRESS_SETTINGS = {"memLevel": 5}


class _Frames:
    """Recently framed messages of one process, by the message's identity and the settings
    of the socket's extensions."""

    def __init__(self) -> None:
        self._by_key: OrderedDict[tuple, tuple[str, bytes]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def frame(self, text: str, settings: tuple, extensions: list) -> bytes:
        key = (id(text), settings)
        found = self._by_key.get(key)
        # The message itself is kept, so its id cannot be another's while remembered.
        if found is not None and found[0] is text:
            self.hits += 1
            return found[1]
        self.misses += 1
        data = Frame(TEXT, text.encode()).serialize(mask=False, extensions=extensions)
        self._by_key[key] = (text, data)
        if len(self._by_key) > _REMEMBERED:
            self._by_key.popitem(last=False)
        return data


FRAMES = _Frames()


def _settings(extensions: list) -> tuple | None:
    """What a frame's bytes depend on, or None when they depend on the socket's history too
    (a compressor keeping its context)."""
    settings = []
    for extension in extensions:
        if not isinstance(extension, PerMessageDeflate) or not extension.local_no_context_takeover:
            return None
        settings.append(("deflate", extension.local_max_window_bits))
    return tuple(settings)


class SharedDeflateFactory(ServerPerMessageDeflateFactory):
    """The server's side of the negotiation: always without context takeover."""

    def __init__(self) -> None:
        super().__init__(server_no_context_takeover=True, server_max_window_bits=WINDOW_BITS,
                         client_max_window_bits=WINDOW_BITS,
                         compress_settings=COMPRESS_SETTINGS)


class LiveWriter:
    """How the live endpoint writes to one socket of ``SharedDeflateProtocol``."""

    def __init__(self, protocol: "SharedDeflateProtocol") -> None:
        self._protocol = protocol

    def now(self, text: str) -> bool:
        """Write ``text`` as a text frame now if the socket takes it without waiting; False,
        with nothing written, when it would wait, is not open yet, or is closing."""
        protocol = self._protocol
        conn = protocol.conn
        # OPEN: accepted (not refused, not answered over HTTP) and no close sent or received.
        if (conn.state is not OPEN or conn.expect_continuation_frame
                or not protocol.writable.is_set() or protocol.transport.is_closing()):
            return False
        if protocol.settings is not None and len(text) >= SHARE_FROM_BYTES:
            data = FRAMES.frame(text, protocol.settings, conn.extensions)
            if conn.writes:  # nothing is left there by uvicorn; were it, it goes first
                data = b"".join(conn.data_to_send()) + data
        else:
            conn.send_text(text.encode())
            data = b"".join(conn.data_to_send())
        protocol.transport.write(data)
        return True

    async def send(self, text: str) -> None:
        """Write ``text`` once the socket takes it; ``ClientDisconnected`` if it closed."""
        await self._protocol.writable.wait()
        if not self.now(text):
            raise ClientDisconnected()


class SharedDeflateProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol with ``SharedDeflateFactory`` as its only
    extension (uvicorn's own ``ws_per_message_deflate`` stays off) and a ``LiveWriter``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.conn = ServerProtocol(extensions=[SharedDeflateFactory()],
                                   max_size=self.config.ws_max_size,
                                   logger=logging.getLogger("uvicorn.error"))
        self.settings: tuple | None = None  # _settings of the agreed extensions

    def handle_connect(self, event) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # none when the handshake was refused
        if scope is not None:
            self.settings = _settings(self.conn.extensions)
            scope["extensions"][WRITER] = LiveWriter(self)
