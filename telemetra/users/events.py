"""What happens to users, recorded by users' services and published after the commit
(``kit.events``)."""

from dataclasses import dataclass

from telemetra.kit.events import event


@event("user.changed")
@dataclass(frozen=True, slots=True)
class UserChanged:
    """A user was changed (role, active or not) or deleted: whatever a process holds on their
    behalf (a live socket, what it may see) must be checked again. ``answer_when_everywhere``:
    the change must reach every process before the request that made it is answered, so that
    a deactivated user's socket is closed everywhere by then."""

    answer_when_everywhere = True

    user_id: int
    organization_id: int
    is_active: bool
    role: str
    deleted: bool = False
