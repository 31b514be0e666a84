"""Fixtures shared by the ingestion tests."""

from tests.readings.conftest import device, key  # noqa: F401  (the same device and key)
