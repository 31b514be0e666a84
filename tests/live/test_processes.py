"""Two ``telemetra serve`` processes on one PostgreSQL: readings posted to either arrive on
sockets held by both. The remote half needs the transport of writer events between processes
(``ReadingsCommitted`` relayed for the organizations a process registered with
``EventBus.set_interest``); until it is there, only the local half can pass."""

import asyncio

import httpx
import pytest

from tests.live.conftest import live, new_device, post_readings, reading_time
from tests.server import Server


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # processes share PostgreSQL
def test_readings_posted_to_either_process_reach_sockets_on_both(databases, tmp_path):
    database_url = databases.new()
    a = Server(database_url, tmp_path / "a.log")
    b = Server(database_url, tmp_path / "b.log")
    a.start()
    try:
        b.start()
        try:
            headers = a.login()
            token = headers["Authorization"].removeprefix("Bearer ")
            device = new_device(a, headers)

            async def scenario():
                async with live(a, token) as on_a, live(b, token) as on_b, \
                        httpx.AsyncClient() as client:
                    for socket in (on_a, on_b):
                        await socket.subscribe(topic="readings", device_id=device["id"])
                    for n, process in enumerate((a, b)):
                        await post_readings(client, process, device["api_key"],
                                            {"ts": reading_time(), "values": {"level": n}})
                        for held_by, socket in (("a", on_a), ("b", on_b)):
                            try:
                                got = await socket.expect("readings", timeout=2.0)
                            except TimeoutError:
                                raise AssertionError(
                                    f"a reading posted to process {'ab'[n]} never reached the "
                                    f"socket held by process {held_by}") from None
                            assert got["items"][0]["value"] == n

            asyncio.run(scenario())
        finally:
            b.stop()
    finally:
        a.stop()
