"""`eventsctl preview guard`: block infra changes that would lose data, and summarise the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from events_infra.cli import options
from events_infra.cli.errors import Exit, UserError, user_errors
from events_infra.cli.render import emit

app = typer.Typer(help="Check `pulumi preview --json` output in CI.", no_args_is_help=True)


@app.command("guard")
def guard_command(
    preview: Path = typer.Argument(..., help="File written by `pulumi preview --json`."),
    allow: list[str] = typer.Option(
        None, "--allow", help="URN to allow (repeatable; for local use: CI reads --pr-body)."
    ),
    pr_body: Path = typer.Option(
        None,
        "--pr-body",
        help="The pull request's description: its `guard-allow: URN reason` lines allow those.",
    ),
    adopt_plan: Path = typer.Option(
        None,
        "--adopt-plan",
        help="`eventsctl adopt plan --json` output: creates of resources it found live fail.",
    ),
    preview_exit_code: int = typer.Option(
        None,
        "--preview-exit-code",
        help="`pulumi preview`'s exit code: non-zero fails the guard even without an error in "
        "its JSON (a policy violation is not in it).",
    ),
    preview_log: Path = typer.Option(
        None, "--preview-log", help="`pulumi preview`'s stderr: its error lines are quoted."
    ),
    summary: Path = typer.Option(
        None, "--summary", help="Write a markdown summary (for a pull-request comment) here."
    ),
    stack: str = typer.Option(None, "--stack", help="Stack name shown in the summary."),
    as_json: bool = options.JSON,
) -> None:
    """Fail (exit 1) when the preview would replace or delete a resource, update one in a way
    that loses data or restarts it, create one that already exists, import one with
    differences, take a step op the guard does not know, or when the preview itself failed;
    name each and why. `guard-allow` lines in the pull request allow a finding by its URN."""
    from events_infra.preview.check import PreviewError, PreviewRun, failed_summary, guard

    run = PreviewRun(preview_exit_code, preview_log)
    with user_errors():
        try:
            verdict = guard(preview, list(allow or []), pr_body, adopt_plan, stack, run)
        except PreviewError as err:
            if summary is not None:
                summary.write_text(failed_summary(err, stack))
            raise UserError(str(err)) from None
        if summary is not None:
            summary.write_text(verdict.summary)
    result = {
        "blocked": [_row(f) for f in verdict.blocked],
        "allowed": [_row(f) for f in verdict.findings if f.allowed],
    }

    def human(d: dict[str, Any]) -> None:
        for item in d["blocked"]:
            where = f"\n  {item['urn']}" if item["urn"] else ""
            typer.echo(f"BLOCKED: {item['message']}{where}", err=True)
        for item in d["allowed"]:
            typer.echo(f"allowed: {item['message']} ({item['reason']})", err=True)
        if not d["blocked"]:
            typer.echo("nothing blocked", err=True)

    emit(result, as_json, human)
    raise typer.Exit(int(Exit.FOUND if verdict.blocked else Exit.OK))


def _row(finding: Any) -> dict[str, Any]:
    return vars(finding) | {"message": finding.describe()}
