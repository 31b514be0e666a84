"""Helpers for the alert tests: waiting for what the reactions do after commit."""

import time
from collections.abc import Callable
from typing import Any


def eventually(probe: Callable[[], Any], timeout: float = 15.0, interval: float = 0.1) -> Any:
    """``probe()`` once it is truthy; fails with its last value after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    value = probe()
    while not value:
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout} s")
        time.sleep(interval)
        value = probe()
    return value
