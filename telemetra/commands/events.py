"""What happens to commands, published after the commit (``kit.events``)."""

from dataclasses import dataclass
from typing import Any

from telemetra.kit.events import event


@event("command.queued")
@dataclass(frozen=True, slots=True)
class CommandQueued:
    """A command was queued for a device: the MQTT side publishes it on the device's topic.
    Sent once, by the process that queued it (``local_only``): relayed, every process would
    publish it and the device would get it once per process."""

    local_only = True

    command_id: int
    device_id: int
    organization_id: int
    message: Any  # the MQTT payload (commands.service.command_message): plain JSON types


@event("command.changed")
@dataclass(frozen=True, slots=True)
class CommandChanged:
    """A command was created or its status changed (delivered, succeeded, failed, cancelled,
    expired). ``command`` is its public shape (API.md, Commands) in plain JSON types, as live
    sockets send it. Relayed to every process (it carries no secret)."""

    command_id: int
    device_id: int
    organization_id: int
    status: str
    command: dict[str, Any]
