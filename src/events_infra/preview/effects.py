"""What an in-place update in a preview does to the running resource.

Pulumi calls lowering a subscription's retention, changing a Cloud SQL tier and renaming a
label alike an "update". The change-class table (`stack_config.change_classes`) knows which
provider inputs carry which stack setting and what changing each does; this module compares a
step's old and new inputs with it, so the guard judges an update by its effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from events_infra.preview.digest import UNKNOWN, inputs, step_type
from events_infra.stack_config import change_classes


@dataclass(frozen=True)
class Effect:
    property: str
    before: Any
    after: Any
    change: str
    """A change_classes class: IN_PLACE, RESTART, DATA_LOSS or REPLACEMENT."""
    why: str

    @property
    def disruptive(self) -> bool:
        return self.change != change_classes.IN_PLACE


def lookup(values: dict[str, Any], path: str) -> Any:
    """`settings.backupConfiguration.retainedBackups` in nested inputs (None when absent)."""
    found: Any = values
    for part in path.split("."):
        if not isinstance(found, dict):
            return None
        found = found.get(part)
    return found


def _unknown(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(_unknown(v) for v in value)
    return value == UNKNOWN


def effects(step: dict[str, Any]) -> list[Effect]:
    """The step's changes to the properties the table knows, each with its class. A value
    the preview cannot know yet is judged as the worst it could be (as if removed)."""
    table = change_classes.PROPERTIES.get(step_type(step), {})
    old, new = inputs(step, "oldState"), inputs(step, "newState")
    found = []
    for path, prop in table.items():
        before, after = lookup(old, path), lookup(new, path)
        if before == after:
            continue
        unknown = _unknown(after)
        change, why = change_classes.classify(
            prop.kind,
            prop.setting,
            prop.value(before),
            None if unknown else prop.value(after),
        )
        if unknown and change != change_classes.IN_PLACE:
            why = f"{why} (the new value is known only at apply: judged as the worst case)"
        found.append(Effect(path, before, "(known after apply)" if unknown else after, change, why))
    return found
