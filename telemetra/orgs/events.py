"""What happens to organizations, published after the commit (``kit.events``)."""

from dataclasses import dataclass

from telemetra.kit.events import event


@event("organization.invalid_tags_changed")
@dataclass(frozen=True, slots=True)
class InvalidTagsChanged:
    """The tags that make a reading invalid in this organization changed. Answered once
    every process applied it."""

    answer_when_everywhere = True

    organization_id: int


@event("organization.plan_changed")
@dataclass(frozen=True, slots=True)
class PlanChanged:
    """The organization's plan or limits changed: its cached limits are forgotten."""

    organization_id: int
