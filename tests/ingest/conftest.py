"""Fixtures shared by the ingestion tests."""

from tests.readings.conftest import device, key, two_tenants  # noqa: F401  (the same ones)
