"""Sensors: one measured quantity (key) of a device, with its unit and valid range."""
