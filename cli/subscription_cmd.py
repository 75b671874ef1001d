"""`eventsctl subscription`: the way through a subscription change Pub/Sub cannot make in place."""

from __future__ import annotations

from typing import Any

import typer

from events_infra.cli import options
from events_infra.cli.dlq_commands.common import AUDIT_LOG, context, exit_for, interaction
from events_infra.cli.errors import user_errors
from events_infra.cli.render import emit
from events_infra.dlq.interrupts import stopped_like_ctrl_c

app = typer.Typer(
    help="Subscriptions: move a backlog to a successor across an immutable change.",
    no_args_is_help=True,
)


@app.command("migrate")
def migrate_command(
    old: str = typer.Argument(..., help="The subscription whose backlog moves (it is kept)."),
    to: str = typer.Option(
        ..., "--to", help="The successor, declared in the stack and already deployed."
    ),
    stack: str = options.STACK,
    stacks_dir: str = options.STACKS_DIR,
    project: str = options.PROJECT,
    limit: int = typer.Option(None, "--limit", help="Move at most this many."),
    rate: float = typer.Option(None, "--rate", help="At most N messages per second."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would move; change nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    no_snapshot: bool = typer.Option(
        False,
        "--no-snapshot",
        help="No undo snapshot: with copies, of OLD (the journal remains); with a seek, of "
        "NEW (OLD's snapshot is what NEW is seeked to, always taken).",
    ),
    by: str = typer.Option(
        "auto",
        "--by",
        help="copy: targeted copies, each acked in OLD after it is confirmed; seek: seek NEW "
        "to a snapshot of OLD, nothing published (one topic, OLD unfiltered or with NEW's "
        "filter, NEW keeping messages as long as OLD); auto: copies, unless they would reach "
        "an unfiltered subscription not named with --also-reach and a seek is possible.",
    ),
    also_reach: list[str] = typer.Option(
        None,
        "--also-reach",
        help="With copies: an unfiltered subscription on the topic that may receive them too "
        "(repeatable); without it such a subscription stops the move.",
    ),
    audit_log: str = AUDIT_LOG,
    as_json: bool = options.JSON,
) -> None:
    """Move OLD's backlog into NEW: the zero-loss way through a change of filter, ordering,
    name or topic, which GCP can only make by replacing the subscription (dropping its backlog).

    Declare NEW in the stack and deploy it first: from then on it receives every new message.
    By copies (the default): what OLD still holds from before is copied targeted at NEW (no
    other subscription with the replay filter gets a copy; an unfiltered one would, so it
    stops the move unless named with --also-reach), each acknowledged in OLD only after
    Pub/Sub confirmed it and the journal holds it. By a seek (where copies would reach such a
    subscription, or --by seek): NEW is seeked to a snapshot of OLD, nothing is published, NEW
    continues where OLD's consumers stopped and what NEW's consumers acknowledged since comes
    again. Killed at any point, rerun it: consumers dedupe the overlap by event_id. OLD is
    never deleted. Start with --dry-run.
    """
    from events_infra.dlq.migrate_operation import migrate_subscription
    from events_infra.dlq.migrate_request import MigrateRequest

    request = MigrateRequest(
        old=old,
        new=to,
        limit=limit,
        rate=rate,
        dry_run=dry_run,
        snapshot=not no_snapshot,
        audit_log=audit_log,
        also_reach=tuple(also_reach or ()),
        method=by,
    )
    with user_errors():
        ctx = context(stack, stacks_dir, project, None, None)
        io = interaction(yes, "moving" if not dry_run else "scanning")
        with stopped_like_ctrl_c():
            result = migrate_subscription(ctx, request, io)
    emit(result, as_json, _print_migrate)
    exit_for(result)


def _print_migrate(result: dict[str, Any]) -> None:
    if result["method"] == "seek":
        _print_handover(result)
        return
    counts = result["counts"]
    if result["dry_run"]:
        typer.echo(f"dry run: would move {counts['would_move']} messages from {result['from']} to "
                   f"{result['to']} (nothing changed)")  # fmt: skip
    else:
        typer.echo(f"moved {counts['moved']} messages from {result['from']} to {result['to']}")
    typer.echo(
        f"left in {result['from']}: published since the move began {counts['arrived_since_start']}"
        f", refused by {result['to']}'s filter {counts['refused_by_new_filter']}, failed "
        f"{counts['failed']}, acked too late {counts['acked_too_late']}, copies for "
        f"{result['to']} {counts['copies_for_new_left']}; copies for other subscriptions "
        f"acknowledged {counts['foreign_copies_acked']}"
    )


def _print_handover(result: dict[str, Any]) -> None:
    old, new, counts = result["from"], result["to"], result["counts"]
    backlog = result["old_backlog"]
    held = f" ({backlog} messages in {old} by Cloud Monitoring)" if backlog is not None else ""
    if result["dry_run"]:
        typer.echo(f"dry run: would seek {new} to a snapshot of {old}{held}; nothing changed")
    elif not result["handed_over"]:
        typer.echo(f"stopped before the seek: {new} was not handed over")
    else:
        typer.echo(f"{new} now holds what {old} held{held} that {new}'s filter accepts: seeked "
                   f"to snapshot {result['snapshot'].rsplit('/', 1)[-1]}")  # fmt: skip
    if counts:
        verb = "would copy" if result["dry_run"] else "copied"
        moved = counts["would_move"] if result["dry_run"] else counts["moved"]
        typer.echo(f"copies dlq replay had targeted at {old}: {verb} {moved} to {new}; "
                   f"refused by {new}'s filter {counts['refused_by_new_filter']}, failed "
                   f"{counts['failed']}")  # fmt: skip
