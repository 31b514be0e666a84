"""What happens to groups, recorded by groups' service and published after the commit."""

from dataclasses import dataclass

from telemetra.kit.events import event


@event("group.members_changed")
@dataclass(frozen=True, slots=True)
class GroupMembersChanged:
    """A group gained or lost devices (or was deleted): whatever a process holds about which
    devices a group has (alert rules scoped to it) is stale."""

    organization_id: int
    group_id: int
