"""`eventsctl dlq purge` and `restore`: remove dead letters for good, and undo."""

from __future__ import annotations

from pathlib import Path

import typer

from events_infra.cli import options
from events_infra.cli.dlq_commands.common import (
    ATTR,
    AUDIT_LOG,
    NEWER,
    NO_SNAPSHOT,
    OLDER,
    SOURCE,
    app,
    context,
    interaction,
    limit_flag,
    selection_flags,
)
from events_infra.cli.errors import user_errors
from events_infra.cli.render import emit
from events_infra.dlq.interrupts import stopped_like_ctrl_c


@app.command("purge")
def purge_command(
    stack: str = options.STACK,
    stacks_dir: str = options.STACKS_DIR,
    project: str = options.PROJECT,
    dlq_subscription: str = options.DLQ_SUBSCRIPTION,
    source: list[str] = SOURCE,
    attr: list[str] = ATTR,
    older_than: str = OLDER,
    newer_than: str = NEWER,
    limit: int = typer.Option(None, "--limit", help="Remove at most this many."),
    exported: Path = typer.Option(
        None, "--exported", help="Remove only dead letters saved in this export file."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be removed."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Remove without an export, no prompt."),
    no_snapshot: bool = NO_SNAPSHOT,
    audit_log: str = AUDIT_LOG,
    as_json: bool = options.JSON,
) -> None:
    """Remove dead letters for good.

    Only those saved by `export` (--exported FILE), or any matching ones with --yes. Takes a
    snapshot first and prints the undo command.
    """
    from events_infra.dlq.operations import PurgeRequest, purge_dead_letters

    with user_errors():
        request = PurgeRequest(
            selection_flags=selection_flags(source, attr, older_than, newer_than),
            limit=limit_flag(limit),
            exported=exported,
            dry_run=dry_run,
            yes=yes,
            snapshot=not no_snapshot,
            audit_log=audit_log,
        )
        ctx = context(stack, stacks_dir, project, None, dlq_subscription)
        with stopped_like_ctrl_c():
            result = purge_dead_letters(ctx, request, interaction(yes, "purging"))
    emit(
        result,
        as_json,
        lambda d: typer.echo(
            f"{'would remove' if d['dry_run'] else 'removed'} {d['purged']} dead letters "
            f"(kept: {d['not_exported']} not in the export, {d['not_selected']} not selected)"
        ),
    )
    if result["interrupted"]:
        typer.echo("interrupted: the count above is what was removed (recorded in the audit "
                   "log and the undo journal); run the same command again to continue",
                   err=True)  # fmt: skip
        raise typer.Exit(130)


@app.command("restore")
def restore_command(
    snapshot: str = typer.Option(None, "--snapshot", help="Snapshot id printed by replay/purge."),
    journal_file: Path = typer.Option(
        None, "--journal", help="Undo journal printed by replay/purge: publish its letters back."
    ),
    stack: str = options.STACK,
    stacks_dir: str = options.STACKS_DIR,
    project: str = options.PROJECT,
    dlq_subscription: str = options.DLQ_SUBSCRIPTION,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    audit_log: str = AUDIT_LOG,
) -> None:
    """Undo a replay or purge: seek back to its snapshot, or publish its undo journal's letters
    back to the dead-letter topic.

    With --snapshot every message that was in the DLQ when the snapshot was taken is delivered
    again; with --journal exactly the letters the operation acknowledged come back.
    """
    from events_infra.dlq.operations import restore_dead_letters

    with user_errors():
        ctx = context(stack, stacks_dir, project, None, dlq_subscription)
        done = restore_dead_letters(
            ctx, snapshot, journal_file, interaction(yes, "restoring"), audit_log
        )
    typer.echo(done)
