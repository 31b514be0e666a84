"""A shutdown step that hangs is cut short after its bound and logged with where every task
waited, so the next hang names itself; one that fails is logged; the next steps still run."""

import asyncio
import logging

import pytest

from telemetra import app as app_module
from tests.conftest import ShutdownStepHung


def test_a_hung_step_is_cut_short_and_names_where_it_waits(monkeypatch, caplog):
    monkeypatch.setattr(app_module, "SHUTDOWN_STEP_SECONDS", 0.05)

    async def waits_for_a_lock_nobody_frees(lock: asyncio.Lock) -> None:
        async with lock:
            pass

    async def fails() -> None:
        raise RuntimeError("the broker went away")

    async def scenario() -> list[str]:
        ran = []
        lock = asyncio.Lock()
        await lock.acquire()
        await app_module._stopping("the hung step", waits_for_a_lock_nobody_frees(lock))
        await app_module._stopping("the failing step", fails())
        await app_module._stopping("the last step", asyncio.sleep(0, ran.append("last")))
        return ran

    with caplog.at_level(logging.WARNING, logger="telemetra"), \
            pytest.warns(ShutdownStepHung, match="the hung step did not stop"):
        ran = asyncio.run(scenario())  # the suite's summary names the hung step too
    assert ran == ["last"]
    hung, failed = caplog.records
    assert "the hung step did not stop in 0 s" in hung.getMessage()
    assert "task shutdown step: the hung step:\n  test_a_hung_step" in hung.getMessage()
    assert "waits_for_a_lock_nobody_frees" in hung.getMessage()
    assert "Lock.acquire" in hung.getMessage()
    assert failed.getMessage() == "shutting down: the failing step failed"
    assert "the broker went away" in caplog.text
