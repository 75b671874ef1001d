"""One guard run: the preview, the pull request's overrides and the live estate in, the
findings and the pull-request comment out (what `eventsctl preview guard` renders)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from events_infra.preview import digest
from events_infra.preview.digest import PreviewError
from events_infra.preview.guard import Finding, find_findings, load_live
from events_infra.preview.overrides import from_body
from events_infra.preview.summary import summarize


@dataclass
class Verdict:
    findings: list[Finding]
    summary: str

    @property
    def blocked(self) -> list[Finding]:
        return [f for f in self.findings if not f.allowed]


def guard(
    preview_path: Path,
    allow: list[str],
    pr_body: Path | None = None,
    adopt_plan: Path | None = None,
    stack: str | None = None,
) -> Verdict:
    """Judge a preview file. A file that is not a preview (the preview died before writing
    one) is a PreviewError, with a summary still produced for the pull request's comment by
    `failed_summary`."""
    body = ""
    if pr_body is not None:
        try:
            body = pr_body.read_text()
        except OSError as err:
            raise PreviewError(f"{pr_body}: {err.strerror}; pass the pull request's body") from None
    overrides = from_body(body, allow)
    live = load_live(adopt_plan) if adopt_plan is not None else set()
    preview = digest.load_preview(preview_path)
    findings = find_findings(preview, overrides, live)
    return Verdict(findings, summarize(preview, findings, stack, overrides))


def failed_summary(error: PreviewError, stack: str | None) -> str:
    """The comment for a preview that wrote nothing the guard can read."""
    title = f"### Pulumi preview{f': `{stack}`' if stack else ''}"
    return f"{title}\n\n**Blocked**: {error}\n"
