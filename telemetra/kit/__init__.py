"""Shared plumbing. Never imports a feature package."""
