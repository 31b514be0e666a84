"""What happens to devices, recorded by devices' services (and sites', whose deletion takes
its devices along) and published after the commit (``kit.events``)."""

from dataclasses import dataclass, field

from telemetra.kit.events import event


@event("device.changed")
@dataclass(frozen=True, slots=True)
class DeviceChanged:
    """A device was created, changed or deleted: whatever a process holds about it (its key,
    its status, its sensors) is stale. ``status`` is the device's status after the change (at
    deletion, its last); ``status_changed`` says it moved (active, inactive, maintenance).
    A change to a device (a rotated key, a deactivation) is answered once every process
    applied it (``telemetra.db.relay``): refused everywhere from its answer on."""

    answer_when_everywhere = True

    device_id: int
    organization_id: int
    status: str
    deleted: bool = False
    status_changed: bool = False


@event("device.key_issued")
@dataclass(frozen=True, slots=True)
class DeviceKeyIssued:
    """A device got a key (registration or rotation): the broker's login for it follows.
    Carries the key itself, so it stays in the process that issued it: never relayed to
    other processes nor stored (``local_only``); ``DeviceChanged`` tells them."""

    local_only = True

    device_id: int
    organization_id: int
    key: str = field(repr=False)
    active: bool = True


@event("device.status_changed")
@dataclass(frozen=True, slots=True)
class DeviceStatusChanged:
    """A device went offline (unseen past its ``offline_after_seconds``) or online again.
    Recorded by the process whose update made the transition (so once, whatever the number of
    processes); ``last_seen`` is ISO 8601 UTC or None."""

    device_id: int
    organization_id: int
    name: str
    online: bool
    status: str
    last_seen: str | None
