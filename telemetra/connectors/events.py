"""What happens to connectors, published after the commit (``kit.events``)."""

from dataclasses import dataclass

from telemetra.kit.events import event


@event("connectors.changed")
@dataclass(frozen=True, slots=True)
class ConnectorsChanged:
    """A connector of this organization was created, changed or deleted (or went with its
    device): whoever subscribes to connector topics reads them again."""

    organization_id: int
