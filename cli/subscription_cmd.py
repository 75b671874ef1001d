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
        False, "--no-snapshot", help="Do not snapshot OLD first (the journal remains)."
    ),
    by: str = typer.Option(
        "auto",
        "--by",
        help="seek: seek NEW to a snapshot of OLD, nothing published (OLD and NEW on one "
        "topic, OLD unfiltered or with NEW's filter); copy: targeted copies, acked in OLD "
        "after each is confirmed; auto: seek wherever Pub/Sub allows it.",
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
    Where Pub/Sub allows (one topic; OLD unfiltered or with NEW's filter) NEW is seeked to a
    snapshot of OLD: nothing is published, NEW continues where OLD's consumers stopped, and
    what NEW's consumers acknowledged since comes again. Otherwise (or with --by copy) this
    copies the messages OLD still holds from before (targeted at NEW, so no other subscription
    with the replay filter gets a copy; an unfiltered one would, so it stops the move unless
    named with --also-reach), acknowledging each in OLD only after Pub/Sub confirmed its copy
    and the journal holds it. Killed at any point, rerun it: consumers dedupe the overlap by
    event_id. OLD is never deleted. Start with --dry-run.
    """
    from events_infra.dlq.migrate_operation import MigrateRequest, migrate_subscription

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
        f"{counts['failed']}, acked too late {counts['acked_too_late']}; copies for other "
        f"subscriptions acknowledged {counts['foreign_copies_acked']}"
    )


def _print_handover(result: dict[str, Any]) -> None:
    old, new = result["from"], result["to"]
    backlog = result["old_backlog"]
    held = f" ({backlog} messages in {old} by Cloud Monitoring)" if backlog is not None else ""
    if result["dry_run"]:
        typer.echo(f"dry run: would seek {new} to a snapshot of {old}{held}; nothing is "
                   "published and nothing changed")  # fmt: skip
    else:
        typer.echo(f"{new} now holds what {old} held{held}: seeked to snapshot "
                   f"{result['snapshot'].rsplit('/', 1)[-1]}; nothing was published")  # fmt: skip
