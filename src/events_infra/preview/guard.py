"""The diff guard: refuse previews that would lose data, stop a database, or that it cannot judge.

`protect` stops deletes and replaces of protected resources, but not an in-place update that
expires a subscription's messages or restarts Cloud SQL, not a create of a name that already
exists (the first `up` on a running estate stops half-way at 409), not the other step ops
Pulumi emits, and not deletes of what holds no data but keeps the backbone running (alerts,
IAM grants, service accounts, the relay). The guard reads `pulumi preview --json` and fails
(exit 1) on each of these, one finding per resource and check:

- REPLACE: any resource the stack declares replaced (deleted and created again: a topic's,
  subscription's or database's data goes with it; a service account's outside grants do);
- DELETE: any resource the stack declares deleted (or abandoned, when it is retained);
- EFFECT: an in-place update the change-class table marks as data loss, restart or impossible;
- COLLISION: a create of a resource `eventsctl adopt plan` found already live;
- IMPORT_DIFF: an import whose live resource differs from the program;
- STEP_OP: a managed resource turned into a read one, a half-done replacement given up, or a
  step op the guard does not know;
- DIAGNOSTIC: an error the preview reported (it failed: say why instead of staying silent).

A finding is allowed by an override for its URN (`preview.overrides`), except a diagnostic: a
preview that failed cannot be applied, whatever anyone allows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from events_infra.preview import digest
from events_infra.preview.digest import PreviewError
from events_infra.preview.effects import effects
from events_infra.preview.overrides import Overrides
from events_infra.stack_config import pulumi_names as names

GUARDED_TYPES = {
    names.TOPIC_TYPE: "topic",
    names.SUBSCRIPTION_TYPE: "subscription",
    names.SQL_INSTANCE_TYPE: "Cloud SQL instance",
    names.SQL_DATABASE_TYPE: "Cloud SQL database",
}
"""The types that hold data: replacing one loses it."""
PLAIN_OPS = {"same", "create", "update", "read", "refresh", "import", "discard", "discard-replaced"}
"""Step ops judged by their content (collision, effect, import diff), not by the op. `discard`
and `discard-replaced` drop a read resource from the state: nothing live is deleted."""
REPLACE_OPS = {"replace", "create-replacement", "delete-replaced", "import-replacement"}
DELETE_OPS = {"delete"}
REVIEW_OPS = {
    "read-replacement": "would be READ instead of managed: the stack stops managing it (and a "
    "delete-replaced of the managed one usually follows)",
    "remove-pending-replace": "is a replacement that stopped half-way being given up: the old "
    "resource was already deleted; check the live estate before going on",
}
KNOWN_OPS = PLAIN_OPS | REPLACE_OPS | DELETE_OPS | set(REVIEW_OPS)

REPLACE, DELETE, EFFECT = "replace", "delete", "in-place effect"
COLLISION, IMPORT_DIFF, STEP_OP, DIAGNOSTIC = (
    "collision",
    "import with diff",
    "step op",
    "diagnostic",
)

_LOSES = {
    "subscription": "its backlog is lost",
    "topic": "messages published meanwhile are lost and dependants are re-created",
    "Cloud SQL instance": "the outbox and its backups go with it",
    "Cloud SQL database": "the outbox rows are lost",
}


_RECREATED = (
    "deleted and created again: what refers to it from outside the stack (grants, IDs, "
    "history) is lost, and it is missing in between"
)


@dataclass(frozen=True)
class Finding:
    urn: str
    type: str
    name: str
    op: str
    check: str
    properties: tuple[str, ...] = ()
    detail: str = ""
    allowed: bool = False
    reason: str = ""
    """Why it is allowed (the override's words)."""
    source: str = ""
    """Who allowed it: "pull request" or "--allow"."""

    def describe(self) -> str:
        kind = GUARDED_TYPES.get(self.type, self.type)
        if self.check == REPLACE:
            forced = ", ".join(self.properties) or "unknown properties"
            return (
                f"{kind} {self.name} would be REPLACED (forced by: {forced}): "
                f"{_LOSES.get(kind, _RECREATED)}"
            )
        if self.check == DELETE:
            return f"{kind} {self.name} would be {self.detail}"
        if self.check == DIAGNOSTIC:
            where = f" ({self.name})" if self.urn else ""
            return f"the preview failed{where}: {self.detail}"
        return f"{kind} {self.name}: {self.detail}"


def load_live(path: Path) -> set[tuple[str, str]] | None:
    """(type, logical name) of the managed resources an `adopt plan --json` found live; None
    when the file is empty (the plan could not read the estate: collisions go unchecked, and
    the summary says so)."""
    try:
        raw = path.read_text()
        if not raw.strip():
            return None
        data = json.loads(raw)
        resources = data["resources"]
        return {
            (str(r["type"]), str(r["name"]))
            for r in resources
            if r.get("state") == "exists" and r.get("managed", True)
        }
    except FileNotFoundError:
        raise PreviewError(
            f"{path}: no such file; write it with `eventsctl adopt plan --json`"
        ) from None
    except (ValueError, KeyError, TypeError):
        raise PreviewError(f"{path}: not `eventsctl adopt plan --json` output") from None


def _declared(step: dict[str, Any], kind: str) -> bool:
    """A resource the stack itself declares: not the stack, a provider or a component."""
    if kind.startswith("pulumi:"):
        return False
    for state in (step.get("newState"), step.get("oldState")):
        if isinstance(state, dict) and "custom" in state:
            return bool(state["custom"])
    return not kind.startswith(f"{names.PROJECT}:")


def _judge(
    step: dict[str, Any], live: set[tuple[str, str]]
) -> list[tuple[str, str, tuple[str, ...], str]]:
    """(check, op, properties, detail) for one step; empty when it passes."""
    op, urn, kind = str(step.get("op", "")), str(step.get("urn", "")), digest.step_type(step)
    if not _declared(step, kind):
        return []
    name = digest.urn_name(urn)
    if op not in KNOWN_OPS:
        return [
            (STEP_OP, op, (), f"step op {op!r} is one the guard does not know: review it by hand")
        ]
    if op in REVIEW_OPS:
        return [(STEP_OP, op, (), REVIEW_OPS[op])]
    if op in REPLACE_OPS:
        return [(REPLACE, "replace", digest.replace_reasons(step), "")]
    if op in DELETE_OPS:
        what = (
            "ABANDONED (retained: it keeps running, no longer managed)"
            if digest.retained(step)
            else "DELETED"
        )
        return [(DELETE, "delete", (), what)]
    found = []
    if op == "create" and (kind, name) in live:
        found.append(
            (COLLISION, op, (), "would be CREATED but already exists live (a 409 half-way "
             "through up): import it first (`eventsctl adopt plan --out`, `pulumi import --file`)")
        )  # fmt: skip
    if op == "import" and (props := digest.changed_properties(step)):
        found.append(
            (IMPORT_DIFF, op, props, f"is IMPORTED with differences ({', '.join(props)}): the "
             "import must match the live resource exactly; fix the program or adopt it first")
        )  # fmt: skip
    if op in ("update", "import"):
        bad = [e for e in effects(step) if e.disruptive]
        if bad:
            detail = "; ".join(
                f"{e.property} {e.before!r} -> {e.after!r}: {e.change} ({e.why})" for e in bad
            )
            found.append((EFFECT, op, tuple(e.property for e in bad), f"in-place update: {detail}"))
    return found


def find_findings(
    preview: dict[str, Any], overrides: Overrides, live: set[tuple[str, str]] | None = None
) -> list[Finding]:
    """Every finding of the preview, one per resource and check, each marked allowed when an
    override names its URN."""
    seen: dict[tuple[str, str], Finding] = {}
    for step in digest.steps(preview):
        urn, kind = str(step.get("urn", "")), digest.step_type(step)
        for check, op, properties, detail in _judge(step, live or set()):
            previous = seen.get((urn, check))
            if previous is not None:  # a replace comes as create-replacement + delete-replaced
                properties = tuple(dict.fromkeys(previous.properties + properties))
            override = overrides.get(urn)
            seen[(urn, check)] = Finding(
                urn, kind, digest.urn_name(urn), op, check, properties, detail,
                allowed=override is not None, reason=override.reason if override else "",
                source=override.source if override else "",
            )  # fmt: skip
    found = list(seen.values())
    for diag in digest.diagnostics(preview):
        if diag.severity == "error":
            kind = digest.urn_type(diag.urn)
            name = digest.urn_name(diag.urn) if diag.urn else ""
            found.append(Finding(diag.urn, kind, name, "", DIAGNOSTIC, (), diag.message))
    return found


def failed_run(exit_code: int | None, log: str, findings: list[Finding]) -> Finding | None:
    """A preview that exited non-zero without an error diagnostic in its JSON (a policy
    violation is not in `--json` output; a crash writes none): blocked, quoting the error
    lines of its log."""
    if not exit_code or any(f.check == DIAGNOSTIC for f in findings):
        return None
    lines = [
        line.strip() for line in log.splitlines()
        if line.strip().startswith(("error:", "mandatory:", "advisory:")) or "violation" in line
    ]  # fmt: skip
    said = "; ".join(lines[:10]) or "its log (the preview step's output) says why"
    return Finding("", "", "", "", DIAGNOSTIC, (), f"pulumi preview exited {exit_code}: {said}")
