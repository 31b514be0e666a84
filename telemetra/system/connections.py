"""uvicorn's HTTP protocol with a deadline for the request head.

uvicorn closes a kept-alive connection idle after a response (``timeout_keep_alive``), and
nothing else: a connection that never sends a byte, or sends a request head one byte at a
time (slowloris), is held open for ever, each a file descriptor and a little memory. Here
every request head must be complete within ``TELEMETRA_HTTP_HEADER_TIMEOUT_SECONDS``, counted
from the connection (its first request) or from the first byte of a later request on a
kept-alive connection; past it the connection is closed (with a 408 if part of a head came).
Request bodies and responses are not limited here. Production runs behind a reverse proxy
that buffers requests anyway (see the README).

``uvicorn.run(http="telemetra.system.connections:HeadTimeoutProtocol")``: an import string,
so that every worker process of ``--workers N`` loads it. The setting is read from the
environment in each worker, as the app's own settings are.
"""

import asyncio

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from telemetra.settings import get_settings

_TIMED_OUT = b"the request head took too long to arrive"
_REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                    b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                    % (len(_TIMED_OUT), _TIMED_OUT))


class HeadTimeoutProtocol(AutoHTTPProtocol):  # httptools', or h11's when httptools is absent
    """Relies on what both of uvicorn's protocols have: ``cycle`` is the current request's,
    replaced when a new request head has been parsed, ``transport`` the connection."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._head_timeout = get_settings().http_header_timeout_seconds
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and self._between_requests():
            self._arm()  # the first byte of the next request on a kept-alive connection
        cycle = self.cycle
        if self._head_timer is not None:
            self._head_bytes += len(data)
        super().data_received(data)
        if self.cycle is not cycle or self.transport.get_protocol() is not self:
            self._disarm()  # a head is complete (or the connection was upgraded)

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        self._disarm()
        self._head_bytes = 0
        self._head_timer = asyncio.get_running_loop().call_later(self._head_timeout,
                                                                 self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._between_requests():
            return
        if self._head_bytes:
            self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()
