"""Devices: registration and keys, status, heartbeats and logs."""
