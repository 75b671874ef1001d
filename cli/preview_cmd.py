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
        None, "--allow", help="URN of an intended delete/replace (repeatable)."
    ),
    summary: Path = typer.Option(
        None, "--summary", help="Write a markdown summary (for a pull-request comment) here."
    ),
    stack: str = typer.Option(None, "--stack", help="Stack name shown in the summary."),
    as_json: bool = options.JSON,
) -> None:
    """Fail (exit 1) when a topic, subscription, dead-letter resource or Cloud SQL instance or
    database would be deleted or replaced, naming each and the property forcing it."""
    from events_infra.preview.guard import PreviewError, find_dangerous, load_preview, summarize

    with user_errors():
        try:
            data = load_preview(preview)
        except PreviewError as err:
            raise UserError(str(err)) from None
        findings = find_dangerous(data, set(allow or []))
        if summary is not None:
            summary.write_text(summarize(data, findings, stack))
    blocked = [f for f in findings if not f.allowed]
    result = {
        "blocked": [vars(f) | {"message": f.describe()} for f in blocked],
        "allowed": [vars(f) | {"message": f.describe()} for f in findings if f.allowed],
    }

    def human(d: dict[str, Any]) -> None:
        for item in d["blocked"]:
            typer.echo(f"BLOCKED: {item['message']}\n  {item['urn']}", err=True)
        for item in d["allowed"]:
            typer.echo(f"allowed: {item['message']}", err=True)
        if not d["blocked"]:
            typer.echo("no data-losing changes", err=True)

    emit(result, as_json, human)
    raise typer.Exit(int(Exit.FOUND if blocked else Exit.OK))
