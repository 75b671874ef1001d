"""What `eventsctl adopt plan` reports: each declared resource, live or absent, and each
difference from the model with the class of change it needs."""

from __future__ import annotations

from dataclasses import dataclass, field

from events_infra.errors import EventsInfraError
from events_infra.stack_config import pulumi_names as names
from events_infra.stack_config.live_diff import DISRUPTIVE, IN_PLACE, MIGRATION, Difference
from events_infra.stack_config.live_sql import PREREQUISITE

__all__ = [
    "BLOCKING", "DISRUPTIVE", "IN_PLACE", "MIGRATION", "PREREQUISITE",
    "AdoptError", "Difference", "Resource",
]  # fmt: skip

BLOCKING = (DISRUPTIVE, MIGRATION, PREREQUISITE)


class AdoptError(EventsInfraError):
    """The live estate could not be read; the message says what and how to fix it."""


@dataclass
class Resource:
    """One resource the stack declares, as the program registers it and as GCP holds it."""

    type: str
    logical_name: str
    path: str
    exists: bool = False
    differences: list[Difference] = field(default_factory=list)
    parent: str = names.BUS
    """The logical name of the component the program declares it under."""
    parent_type: str = names.EVENT_BUS_TYPE
    managed: bool = True
    """False for what the stack relies on but never creates or imports (an `existing`
    database): checked, never in the import file."""

    @property
    def needs_migration(self) -> bool:
        """A difference that would lose data: a replacement, or a lower retention."""
        return any(d.change in BLOCKING for d in self.differences)
