"""Shared pieces of the `eventsctl dlq` commands: the Typer group, filter and safety options,
the context, confirmation, warnings and the progress bar."""

from __future__ import annotations

import sys
from typing import Any

import typer

from events_infra.cli.errors import UserError
from events_infra.cli.progress import Progress

app = typer.Typer(
    help="Dead letters: status, inspect, replay to the subscription that failed them, "
    "export, purge, restore and doctor.",
    no_args_is_help=True,
)

SOURCE = typer.Option(
    None, "--source", help="Only dead letters from this subscription (repeatable)."
)
ATTR = typer.Option(
    None, "--attr", help="Only dead letters with attribute KEY=VALUE (repeatable; all must match)."
)
OLDER = typer.Option(
    None, "--older-than", help="Only dead letters in the DLQ longer than this (e.g. 1h)."
)
NEWER = typer.Option(
    None, "--newer-than", help="Only dead letters in the DLQ for less than this (e.g. 30m)."
)
NO_SNAPSHOT = typer.Option(
    False, "--no-snapshot", help="Do not snapshot the DLQ subscription first (no undo)."
)
AUDIT_LOG = typer.Option(
    None,
    "--audit-log",
    envvar="EVENTSCTL_AUDIT_LOG",
    help="JSONL file the operation is recorded in (default ~/.local/state/eventsctl/audit.jsonl).",
)


def context(
    stack: str,
    stacks_dir: str | None,
    project: str | None,
    topic: str | None,
    dlq_subscription: str | None,
) -> Any:
    from events_infra.dlq.context import DlqContext

    return DlqContext(stack, stacks_dir, project, topic, dlq_subscription)


def limit_flag(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise UserError(f"--limit {value}: use 1 or more")
    return value


def selection_flags(
    source: list[str] | None, attr: list[str] | None, older: str | None, newer: str | None
) -> dict[str, Any]:
    return {"sources": source, "attributes": attr, "older_than": older, "newer_than": newer}


def warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


def interaction(yes: bool, label: str) -> Any:
    """The library's Interaction for a command: prompts on stderr (or --yes), messages on
    stderr, a progress bar labelled `label`."""
    from events_infra.dlq.operations import Interaction

    def ask(question: str) -> None:
        confirm(yes, question)

    ask.assume_yes = yes  # type: ignore[attr-defined]
    return Interaction(
        confirm=ask,
        say=lambda text: typer.echo(text, err=True),
        warn=warn,
        progress=lambda total: Progress(label, total),
        watching=sys.stderr.isatty(),
    )


def confirm(yes: bool, question: str) -> None:
    if yes:
        return
    try:
        confirmed = typer.confirm(question, default=False, err=True)
    except typer.Abort:
        raise UserError(
            "no confirmation (stdin closed): pass --yes to go ahead without a prompt"
        ) from None
    if not confirmed:
        raise UserError("not confirmed: nothing changed")


def exit_for(result: dict[str, Any]) -> None:
    """The exit of a copying operation (replay, subscription migrate) after its summary is
    printed: 130 when it was interrupted (what was done is recorded), 1 when copies failed."""
    from events_infra.cli.errors import Exit

    if result["interrupted"]:
        typer.echo("interrupted: the counts above are what was done (recorded in the audit "
                   "log); run the same command again to continue", err=True)  # fmt: skip
        raise typer.Exit(130)
    if result["counts"].get("failed"):
        raise typer.Exit(int(Exit.ERROR))
