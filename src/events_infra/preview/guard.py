"""The diff guard: refuse previews that would delete or replace data-holding resources.

A replaced subscription loses its backlog, a replaced dead-letter subscription loses the dead
letters, a replaced topic drops what is published meanwhile, and a replaced Cloud SQL instance
or database loses the outbox. `pulumi preview --json` says all of that before it happens.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from events_infra.errors import EventsInfraError

GUARDED_TYPES = {
    "gcp:pubsub/topic:Topic": "topic",
    "gcp:pubsub/subscription:Subscription": "subscription",
    "gcp:sql/databaseInstance:DatabaseInstance": "Cloud SQL instance",
    "gcp:sql/database:Database": "Cloud SQL database",
}
REPLACE_OPS = {"replace", "create-replacement", "delete-replaced"}
DELETE_OPS = {"delete"}
SUMMARY_OPS = ("create", "update", "replace", "delete")


class PreviewError(EventsInfraError, ValueError):
    """The file is not `pulumi preview --json` output."""


@dataclass(frozen=True)
class Finding:
    urn: str
    type: str
    name: str
    op: str
    properties: tuple[str, ...]
    allowed: bool

    def describe(self) -> str:
        kind = GUARDED_TYPES.get(self.type, self.type)
        if self.op == "delete":
            what = f"{kind} {self.name} would be DELETED"
        else:
            forced = ", ".join(self.properties) or "unknown properties"
            what = f"{kind} {self.name} would be REPLACED (forced by: {forced})"
        consequence = {
            "subscription": "its backlog is lost",
            "topic": "messages published meanwhile are lost and dependants are re-created",
            "Cloud SQL instance": "the outbox and its backups go with it",
            "Cloud SQL database": "the outbox rows are lost",
        }.get(kind, "its data is lost")
        return f"{what}: {consequence}"


def load_preview(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise PreviewError(f"{path}: no such file") from None
    except ValueError as err:
        raise PreviewError(
            f"{path}: not JSON ({err}); pass `pulumi preview --json` output"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise PreviewError(f"{path}: no 'steps' list; pass `pulumi preview --json` output")
    return data


def step_type(step: dict[str, Any]) -> str:
    for state in (step.get("newState"), step.get("oldState")):
        if isinstance(state, dict) and state.get("type"):
            return str(state["type"])
    return urn_type(step.get("urn", ""))


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


def find_dangerous(preview: dict[str, Any], allow: set[str]) -> list[Finding]:
    """Deletes and replaces of guarded resources, one finding per resource."""
    seen: dict[str, Finding] = {}
    for step in preview["steps"]:
        op = step.get("op", "")
        kind = step_type(step)
        if kind not in GUARDED_TYPES or op not in REPLACE_OPS | DELETE_OPS:
            continue
        urn = step.get("urn", "")
        reasons = tuple(step.get("replaceReasons") or step.get("keys") or ())
        if not reasons and isinstance(step.get("detailedDiff"), dict):
            reasons = tuple(
                path for path, diff in step["detailedDiff"].items()
                if str((diff or {}).get("kind", "")).endswith("-replace")
            )  # fmt: skip
        previous = seen.get(urn)
        merged = tuple(dict.fromkeys((previous.properties if previous else ()) + reasons))
        final_op = "replace" if op in REPLACE_OPS or (previous and previous.op == "replace") else op
        seen[urn] = Finding(urn, kind, urn_name(urn), final_op, merged, urn in allow)
    return list(seen.values())


def summarize(preview: dict[str, Any], findings: list[Finding], stack: str | None) -> str:
    """A markdown summary for the pull request: counts per component, then what is blocked."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    replaced: dict[str, set[str]] = defaultdict(set)  # a replace may come as two steps
    for step in preview["steps"]:
        op, urn = step.get("op", ""), step.get("urn", "")
        if step_type(step).startswith("pulumi:providers:"):
            continue
        if op in REPLACE_OPS:
            replaced[urn_component(urn)].add(urn)
        elif op in SUMMARY_OPS:
            counts[urn_component(urn)][op] += 1
    for component, urns in replaced.items():
        counts[component]["replace"] = len(urns)
    title = f"### Pulumi preview{f': `{stack}`' if stack else ''}"
    lines = [title, ""]
    if counts:
        lines += ["| component | creates | updates | replaces | deletes |", "|---|---|---|---|---|"]
        for component in sorted(counts):
            c = counts[component]
            lines.append(
                f"| `{component}` | {c['create']} | {c['update']} | {c['replace']} | "
                f"{c['delete']} |"
            )
    else:
        lines.append("No changes.")
    blocked = [f for f in findings if not f.allowed]
    allowed = [f for f in findings if f.allowed]
    if blocked:
        lines += ["", "**Blocked** (data would be lost; add `--allow URN` if intended):", ""]
        lines += [f"- :x: {f.describe()}  \n  `{f.urn}`" for f in blocked]
    if allowed:
        lines += ["", "Allowed on purpose:", ""]
        lines += [f"- :warning: {f.describe()}  \n  `{f.urn}`" for f in allowed]
    return "\n".join(lines) + "\n"
