"""Two ``telemetra serve`` processes on one PostgreSQL: readings posted to either arrive on
sockets held by both. Committed readings cross processes (``ReadingsCommitted`` for the
organizations a process registered with ``EventBus.set_interest``) by PostgreSQL NOTIFY, or by
Redis pub/sub when ``TELEMETRA_REDIS_URL`` is set: both are run."""

import asyncio

import httpx
import pytest

from tests.live.conftest import live, new_device, post_readings, reading_time
from tests.redis_server import RedisServer
from tests.server import Server


@pytest.mark.parametrize("transport", ["notify", "redis"])
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # processes share PostgreSQL
def test_readings_posted_to_either_process_reach_sockets_on_both(databases, tmp_path,
                                                                 transport):
    if transport == "redis":
        redis = RedisServer(tmp_path / "redis").start()
        settings = {"redis_url": redis.url}
    else:
        redis, settings = None, {}
    try:
        _both_ways(databases.new(), tmp_path, settings)
    finally:
        if redis is not None:
            redis.stop()


def _both_ways(database_url: str, tmp_path, settings: dict) -> None:
    a = Server(database_url, tmp_path / "a.log", **settings)
    b = Server(database_url, tmp_path / "b.log", **settings)
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
