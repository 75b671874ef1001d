"""`eventsctl dlq replay`: send dead letters back to the subscription that failed them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    exit_for,
    interaction,
    limit_flag,
    selection_flags,
)
from events_infra.cli.errors import Exit, user_errors
from events_infra.cli.render import emit
from events_infra.dlq.interrupts import stopped_like_ctrl_c


@app.command("replay")
def replay_command(
    stack: str = options.STACK,
    stacks_dir: str = options.STACKS_DIR,
    project: str = options.PROJECT,
    topic: str = options.TOPIC,
    dlq_subscription: str = options.DLQ_SUBSCRIPTION,
    source: list[str] = SOURCE,
    attr: list[str] = ATTR,
    older_than: str = OLDER,
    newer_than: str = NEWER,
    limit: int = typer.Option(None, "--limit", help="Replay at most this many."),
    rate: float = typer.Option(None, "--rate", help="At most N messages per second."),
    broadcast: bool = typer.Option(
        False, "--broadcast", help="Send to every subscription, not only the one that failed it."
    ),
    to: str = typer.Option(
        None,
        "--to",
        help="Send to this subscription of the stack instead of the one that failed each letter "
        "(for letters with no source, or one that was renamed or removed).",
    ),
    max_replays: int = typer.Option(
        3, "--max-replays", help="Leave a message in the DLQ once it was replayed this often."
    ),
    from_file: Path = typer.Option(
        None, "--from-file", help="Publish the records of an export file (edited or not)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be replayed."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    no_snapshot: bool = NO_SNAPSHOT,
    audit_log: str = AUDIT_LOG,
    as_json: bool = options.JSON,
) -> None:
    """Send dead letters back to the subscription that failed them.

    Republishes to the events topic, targeted so healthy subscriptions do not get a second
    copy (--broadcast sends to all, --to one you name), and acknowledges each dead letter only
    after Pub/Sub confirmed its copy, writing it to an undo journal first. Takes a snapshot
    where Pub/Sub allows and prints the commands that undo the replay. Start with --dry-run.
    """
    from events_infra.dlq.operations import ReplayRequest, replay_dead_letters, replay_from_file

    request = ReplayRequest(
        selection_flags=selection_flags(source, attr, older_than, newer_than),
        rate=rate,
        broadcast=broadcast,
        to=to,
        max_replays=max_replays,
        dry_run=dry_run,
        snapshot=not no_snapshot,
        audit_log=audit_log,
    )
    with user_errors():
        request.limit = limit_flag(limit)
        ctx = context(stack, stacks_dir, project, topic, dlq_subscription)
        io = interaction(yes, "replaying" if not dry_run else "scanning")
        if from_file is not None:
            result = replay_from_file(ctx, from_file, request, io)
        else:
            with stopped_like_ctrl_c():
                result = replay_dead_letters(ctx, request, io)
    if from_file is not None:
        emit(result, as_json, lambda d: _print_file_replay(d, ctx.target.stack))
        if result.get("failed"):
            raise typer.Exit(int(Exit.ERROR))
        return
    emit(result, as_json, _print_replay)
    exit_for(result)


def _print_replay(result: dict[str, Any]) -> None:
    counts = result["counts"]
    if result["dry_run"]:
        typer.echo(f"dry run: would replay {counts['would_replay']} dead letters (nothing changed)")
    else:
        typer.echo(f"replayed {counts['replayed']} dead letters")
    for name, count in sorted(result["by_target"].items()):
        typer.echo(f"  {count:>6} -> {name}")
    typer.echo(
        f"skipped (replayed too often) {counts['skipped_poison']}, no known source "
        f"{counts['unroutable']}, duplicates dropped {counts['duplicates_dropped']}, failed "
        f"{counts['failed']}, acked too late {counts['acked_too_late']}, not selected "
        f"{counts['not_selected']}, selected but left in the DLQ {result['left_in_dlq']}"
    )


def _print_file_replay(d: dict[str, Any], stack: str) -> None:
    if d["dry_run"]:
        typer.echo(f"dry run: would publish {d['would_publish']} records")
        return
    typer.echo(f"published {d['published']} records (skipped {d['skipped_poison']}, "
               f"failed {d['failed']})")  # fmt: skip
    typer.echo(
        f"the originals are still in the DLQ: remove them with "
        f"`eventsctl dlq purge --stack {stack} --exported {d['file']}`",
        err=True,
    )
