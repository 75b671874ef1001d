"""The guard's pull-request comment: what the preview changes per component, what is blocked and
why, what was allowed and on whose word, and the preview's warnings."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from events_infra.preview import digest
from events_infra.preview.guard import REPLACE_OPS, Finding
from events_infra.preview.overrides import PULL_REQUEST, Overrides

SUMMARY_OPS = ("create", "update", "replace", "delete")
HOW_TO_ALLOW = (
    "to allow one on purpose, add a line `guard-allow: URN reason` to the pull request's "
    "description; a failed preview cannot be allowed"
)


def _counts(preview: dict[str, Any]) -> dict[str, Counter[str]]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    replaced: dict[str, set[str]] = defaultdict(set)  # a replace may come as two steps
    for step in digest.steps(preview):
        op, urn = step.get("op", ""), step.get("urn", "")
        if digest.step_type(step).startswith("pulumi:providers:"):
            continue
        if op in REPLACE_OPS:
            replaced[digest.urn_component(urn)].add(urn)
        elif op in SUMMARY_OPS:
            counts[digest.urn_component(urn)][op] += 1
    for component, urns in replaced.items():
        counts[component]["replace"] = len(urns)
    return counts


def _escape(text: str) -> str:
    """One markdown line of preview text (messages may span lines or hold backticks)."""
    return " ".join(text.replace("`", "'").split())[:600]


MARKER = "<!-- eventsctl preview guard: {stack} -->"
"""Opens every summary: the deploy of a merge commit finds the guard's comment by it."""


def title(stack: str | None) -> str:
    """The summary's heading (the failed-preview comment's too)."""
    return f"### Pulumi preview{f': `{stack}`' if stack else ''}"


def summarize(
    preview: dict[str, Any],
    findings: list[Finding],
    stack: str | None,
    overrides: Overrides,
    notes: list[str] | None = None,
) -> str:
    """A markdown summary for the pull request: counts per component, then what is blocked."""
    counts = _counts(preview)
    lines = [
        MARKER.format(stack=stack or "-"),
        title(stack),
        "",
    ]
    if counts:
        lines += ["| component | creates | updates | replaces | deletes |", "|---|---|---|---|---|"]
        for component in sorted(counts):
            c = counts[component]
            lines.append(
                f"| `{component}` | {c['create']} | {c['update']} | {c['replace']} | "
                f"{c['delete']} |"
            )
    elif not digest.steps(preview):
        lines.append("No plan: the preview failed before planning (see below).")
    else:
        lines.append("No changes.")
    blocked = [f for f in findings if not f.allowed]
    allowed = [f for f in findings if f.allowed]
    if blocked:
        lines += ["", f"**Blocked** ({HOW_TO_ALLOW}):", ""]
        lines += [
            f"- :x: {_escape(f.describe())}" + (f"  \n  `{f.urn}`" if f.urn else "")
            for f in blocked
        ]
    if allowed:
        lines += ["", "**Allowed:**", ""]
        lines += [
            f"- :warning: {_escape(f.describe())}  \n  `{f.urn}` — {_escape(f.reason)} ({f.source})"
            for f in allowed
        ]
    used = {f.urn for f in allowed}
    unused = [urn for urn in overrides.granted if urn not in used]
    extra = [f"override for `{urn}` matched nothing in this preview" for urn in unused]
    extra += [_escape(message) for message in overrides.refused + (notes or [])]
    extra += [_escape(d.message) for d in digest.diagnostics(preview) if d.severity == "warning"]
    if extra:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in extra]
    if allowed:  # what the deploy of the merge commit reads back: only what was shown here
        lines += ["", "<!-- overrides this comment granted:"]
        lines += [f"guard-allow: {f.urn} {f.reason}" for f in allowed if f.source == PULL_REQUEST]
        lines += ["-->"]
    return "\n".join(lines) + "\n"
