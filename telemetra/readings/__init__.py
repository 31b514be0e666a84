"""Readings: ingestion (HTTP and MQTT share it), storage and time-series queries."""
