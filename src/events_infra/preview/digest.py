"""Reading `pulumi preview --json`: its steps, their resources, and its diagnostics.

The document is Pulumi's PreviewDigest (`pkg/display`): `steps[]` (each with `op`, `urn`,
`oldState` / `newState` holding `type` and `inputs`, `diffReasons`, `replaceReasons`,
`detailedDiff`), `diagnostics[]` (`urn`, `message`, `severity`) and `changeSummary`. Every field
is omitted when empty, and a preview that failed (a `protect` error, a policy violation, a
provider error) still writes its diagnostics: that is what the guard must report then.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from events_infra.errors import EventsInfraError

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""How the JSON shows a value that is known only after apply (Pulumi's unknown sentinel)."""


class PreviewError(EventsInfraError, ValueError):
    """The file is not `pulumi preview --json` output."""


@dataclass(frozen=True)
class Diagnostic:
    severity: str
    message: str
    urn: str = ""


def load_preview(path: Path) -> dict[str, Any]:
    """The digest, or a PreviewError saying how to produce one. An empty file is an error too:
    the preview died before writing anything, and its log says why."""
    try:
        raw = path.read_text()
    except FileNotFoundError:
        raise PreviewError(f"{path}: no such file") from None
    if not raw.strip():
        raise PreviewError(
            f"{path}: empty: `pulumi preview --json` wrote nothing (it failed before planning; "
            "its log says why)"
        )
    try:
        data = json.loads(raw)
    except ValueError as err:
        raise PreviewError(
            f"{path}: not JSON ({err}); pass `pulumi preview --json` output"
        ) from None
    if not isinstance(data, dict) or not any(
        isinstance(data.get(key), list) for key in ("steps", "diagnostics")
    ):
        raise PreviewError(f"{path}: no 'steps' list; pass `pulumi preview --json` output")
    return data


def steps(preview: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in preview.get("steps") or [] if isinstance(s, dict)]


def diagnostics(preview: dict[str, Any]) -> list[Diagnostic]:
    found = []
    for item in preview.get("diagnostics") or []:
        if isinstance(item, dict):
            message = str(item.get("message", "")).strip()
            for prefix in ("error:", "warning:"):  # Pulumi writes the prefix into the message
                message = message.removeprefix(prefix).strip()
            found.append(
                Diagnostic(str(item.get("severity", "")), message, str(item.get("urn") or ""))
            )
    return found


def step_type(step: dict[str, Any]) -> str:
    for state in (step.get("newState"), step.get("oldState")):
        if isinstance(state, dict) and state.get("type"):
            return str(state["type"])
    return urn_type(step.get("urn", ""))


def inputs(step: dict[str, Any], which: str) -> dict[str, Any]:
    """`oldState` or `newState` inputs (empty when the state is absent)."""
    state = step.get(which)
    found = state.get("inputs") if isinstance(state, dict) else None
    return found if isinstance(found, dict) else {}


def retained(step: dict[str, Any]) -> bool:
    """A resource with `retain_on_delete`: its delete only drops it from the state."""
    state = step.get("oldState")
    return isinstance(state, dict) and bool(state.get("retainOnDelete"))


def changed_properties(step: dict[str, Any]) -> tuple[str, ...]:
    """The properties the step changes, as the preview names them."""
    found = list(step.get("diffReasons") or step.get("keys") or ())
    if isinstance(step.get("detailedDiff"), dict):
        found += list(step["detailedDiff"])
    return tuple(dict.fromkeys(str(p) for p in found))


def replace_reasons(step: dict[str, Any]) -> tuple[str, ...]:
    reasons = tuple(step.get("replaceReasons") or step.get("keys") or ())
    if not reasons and isinstance(step.get("detailedDiff"), dict):
        reasons = tuple(
            path for path, diff in step["detailedDiff"].items()
            if str((diff or {}).get("kind", "")).endswith("-replace")
        )  # fmt: skip
    return tuple(str(r) for r in reasons)


def urn_type(urn: str) -> str:
    """`urn:pulumi:prod::events-infra::parent$child::name` -> `child`."""
    parts = urn.split("::")
    return parts[2].split("$")[-1] if len(parts) >= 4 else ""


def urn_name(urn: str) -> str:
    return urn.split("::")[-1] if urn else "?"


def urn_component(urn: str) -> str:
    """The component a resource belongs to: its parent type in the URN (or the stack)."""
    parts = urn.split("::")
    if len(parts) < 4:
        return "(stack)"
    chain = parts[2].split("$")
    return chain[-2] if len(chain) > 1 and chain[-2] != "pulumi:pulumi:Stack" else "(stack)"
