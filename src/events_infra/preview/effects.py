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


def lookup(values: dict[str, Any], path: str) -> tuple[bool, Any]:
    """(whether the object holding the input is set, the input's value or None) for a dotted
    path such as `settings.backupConfiguration.enabled` in nested inputs."""
    found: Any = values
    parts = path.split(".")
    for part in parts[:-1]:
        found = found.get(part) if isinstance(found, dict) else None
    if not isinstance(found, dict):
        return False, None
    return True, found.get(parts[-1])


def _unknown(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(_unknown(v) for v in value)
    return value == UNKNOWN


def _value(values: dict[str, Any], path: str, prop: change_classes.Property) -> Any:
    """The input's value as the rule compares it: parsed, GCP's default when it is unset but
    its holder is set, None when the holder is gone too; an unknown stays the sentinel."""
    held, raw = lookup(values, path)
    if _unknown(raw):
        return raw
    if raw is None:
        return prop.default if held else None
    return prop.value(raw)


def effects(step: dict[str, Any]) -> list[Effect]:
    """The step's changes to the properties the table knows, each with its class. A value
    the preview cannot know yet is judged as the worst it could be (as if removed)."""
    table = change_classes.PROPERTIES.get(step_type(step), {})
    old, new = inputs(step, "oldState"), inputs(step, "newState")
    found = []
    for path, prop in table.items():
        before, after = _value(old, path, prop), _value(new, path, prop)
        if before == after:
            continue
        unknown = _unknown(after)
        change, why = change_classes.classify(
            prop.kind, prop.setting, before, None if unknown else after
        )
        if unknown and change != change_classes.IN_PLACE:
            why = f"{why} (the new value is known only at apply: judged as the worst case)"
        found.append(Effect(path, before, "(known after apply)" if unknown else after, change, why))
    return found
