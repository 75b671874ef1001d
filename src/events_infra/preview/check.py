"""One guard run: the preview, the pull request's overrides and the live estate in, the
findings and the pull-request comment out (what `eventsctl preview guard` renders)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from events_infra.preview import digest
from events_infra.preview.digest import PreviewError
from events_infra.preview.guard import Finding, failed_run, find_findings, load_live
from events_infra.preview.overrides import from_body
from events_infra.preview.summary import summarize, title


@dataclass
class Verdict:
    findings: list[Finding]
    summary: str

    @property
    def blocked(self) -> list[Finding]:
        return [f for f in self.findings if not f.allowed]


@dataclass(frozen=True)
class PreviewRun:
    """What CI knows about the `pulumi preview` it ran, beside its JSON."""

    exit_code: int | None = None
    log: Path | None = None
    """Its stderr: a policy violation or a crash shows only there."""


def _read(path: Path | None, what: str) -> str:
    if path is None:
        return ""
    try:
        return path.read_text(errors="replace")
    except OSError as err:
        raise PreviewError(f"{path}: {err.strerror}; pass {what}") from None


def guard(
    preview_path: Path,
    allow: list[str],
    pr_body: Path | None = None,
    adopt_plan: Path | None = None,
    stack: str | None = None,
    run: PreviewRun | None = None,
) -> Verdict:
    """Judge a preview file. A file that is not a preview is a PreviewError (with
    `failed_summary` for the comment), unless the run says the preview failed: then that
    failure, with its log's error lines, is the finding."""
    run = run or PreviewRun()
    overrides = from_body(_read(pr_body, "the pull request's body"), allow)
    notes = []
    live = load_live(adopt_plan) if adopt_plan is not None else set()
    if live is None:
        notes.append(
            f"creates were not checked against the live estate: {adopt_plan} is empty "
            "(`eventsctl adopt plan` could not read it; its step's log says why)"
        )
    try:
        preview = digest.load_preview(preview_path)
    except PreviewError:
        if not run.exit_code:
            raise
        preview = {}
    findings = find_findings(preview, overrides, live or set())
    failed = failed_run(run.exit_code, _read(run.log, "the preview's log"), findings)
    if failed is not None:
        findings.append(failed)
    return Verdict(findings, summarize(preview, findings, stack, overrides, notes))


def failed_summary(error: PreviewError, stack: str | None) -> str:
    """The comment for a preview that wrote nothing the guard can read."""
    return f"{title(stack)}\n\n**Blocked**: {error}\n"
