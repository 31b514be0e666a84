"""Webhook secrets at rest: ``telemetra.kit.crypto`` (kept here for the alerts' imports)."""

from telemetra.kit.crypto import WEBHOOK_SECRETS, SecretBox

__all__ = ["WEBHOOK_SECRETS", "SecretBox"]
