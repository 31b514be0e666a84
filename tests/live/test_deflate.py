"""The live sockets' protocol (telemetra.live.deflate): a client offering permessage-deflate
gets it, without the server's context takeover, and reads the same messages as a client that
offers none; a message shared by many sockets is framed (and compressed) once for each kind of
socket, and reads back."""

import asyncio
import zlib

import httpx
import pytest
from websockets.extensions.permessage_deflate import PerMessageDeflate

from telemetra.live.deflate import COMPRESS_SETTINGS, FRAMES, WINDOW_BITS, _settings
from telemetra.live.outbox import SharedText
from tests.live.conftest import live, post_readings, reading_time


def _deflating(context_takeover: bool = False) -> list:
    return [PerMessageDeflate(False, not context_takeover, WINDOW_BITS, WINDOW_BITS,
                              dict(COMPRESS_SETTINGS))]


def _read_frame(data: bytes) -> tuple[bool, bytes]:
    """A server frame's (compressed, payload as the client reads it)."""
    first, size, start = data[0], data[1] & 0x7F, 2
    if size >= 126:
        start = 4 if size == 126 else 10
        size = int.from_bytes(data[2:start], "big")
    assert data[1] & 0x80 == 0 and len(data) == start + size  # unmasked, whole
    assert first & 0x8F == 0x81  # a final text frame
    payload = data[start:]
    if first & 0x40:
        payload = zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")
    return bool(first & 0x40), payload


def _readings_text() -> SharedText:
    return SharedText('{"type":"readings","items":[' + ",".join(
        f'{{"key":"t{n}","value":{n}.5}}' for n in range(100)) + "]}")


def test_one_message_sent_to_many_sockets_is_framed_once_a_kind_and_reads_back():
    text = _readings_text()
    hits, misses = FRAMES.hits, FRAMES.misses
    compressed = []
    for _ in range(3):  # three sockets that agreed on the same compression
        extensions = _deflating()
        compressed.append(FRAMES.frame(text, _settings(extensions), extensions))
    plain = [FRAMES.frame(text, _settings([]), []) for _ in range(2)]
    assert (FRAMES.hits - hits, FRAMES.misses - misses) == (3, 2)
    assert compressed[1] is compressed[0] and plain[1] is plain[0]
    assert _read_frame(compressed[0]) == (True, text.encode())
    assert _read_frame(plain[0]) == (False, text.encode())
    assert len(compressed[0]) < len(plain[0]) / 4
    # An equal message in another object is framed again (identity is the key), alike.
    again = FRAMES.frame(SharedText(str(text)), _settings(_deflating()), _deflating())
    assert FRAMES.misses - misses == 3 and again == compressed[0]


def test_a_compressor_that_keeps_its_context_is_never_shared():
    assert _settings(_deflating(context_takeover=True)) is None
    assert _settings(_deflating()) == (("deflate", WINDOW_BITS),)
    assert _settings([]) == ()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # the protocol, not storage
def test_compressed_and_plain_sockets_read_the_same_readings(server, root):
    body = [{"ts": reading_time(), "values": {f"k{n}": n + 0.5 for n in range(40)}}]

    async def scenario():
        async with live(server, root.token) as deflated, \
                live(server, root.token, compression=None) as plain, \
                httpx.AsyncClient() as client:
            assert "server_no_context_takeover" in deflated.socket.response.headers[
                "Sec-WebSocket-Extensions"]
            assert "Sec-WebSocket-Extensions" not in plain.socket.response.headers
            for socket in (deflated, plain):
                await socket.subscribe(topic="readings", device_id=root.device["id"])
            await post_readings(client, server, root.device["api_key"], body)
            got = [await socket.expect("readings") for socket in (deflated, plain)]
            assert got[0] == got[1]
            assert {item["key"]: item["value"] for item in got[0]["items"]} == body[0]["values"]

    asyncio.run(scenario())
