"""Dashboards: saved layouts of chart tiles, the organization's and each user's own default."""
