"""`subscription migrate --by seek` as a person runs it: the copies `dlq replay` had targeted
at OLD → confirm → NEW's undo snapshot, OLD's snapshot, the seek (`dlq.handover`) → audit.

Those copies carry `replay_target=OLD`; NEW's replay filter refuses them, so the seek alone
would leave them in OLD only. Replays can target OLD only while the stack declares it (they go
to a declared source or `--to` a declared subscription), so for an OLD the stack never knew
the seek is all. Otherwise OLD is scanned (nothing else in it is touched) and just those are
copied on, targeted at NEW, acknowledged in OLD after Pub/Sub confirmed each, journalled, as
`--by copy` moves everything; first, since that copy reaches every unfiltered subscription,
a scan that changes nothing makes sure each such one was accepted with `--also-reach`.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from functools import partial
from typing import Any

from events_infra.dlq.context import DlqContext
from events_infra.dlq.errors import DlqError
from events_infra.dlq.messages import DeadLetter
from events_infra.dlq.migrate_request import (
    MIGRATE_GRANTS,
    MigrateRequest,
    audit_migrate,
    move,
    warn_left,
)
from events_infra.dlq.operations import Interaction, backlog_of, close_journal
from events_infra.pubsub.attributes import REPLAY_TARGET


def hand_over_subscription(
    ctx: DlqContext,
    request: MigrateRequest,
    io: Interaction,
    old_live: Any,
    new_live: Any,
    reaches: list[str],
    unaccepted: list[str],
) -> dict[str, Any]:
    """The seek route of `migrate_subscription`, past its preflight (`reaches`: the unfiltered
    subscriptions on the topic, `unaccepted` those not named with --also-reach); returns the
    result.
    Order: OLD's snapshot, before anything scans OLD (`handover.snapshot_old`); the replay
    copies for OLD (their copies, published after the snapshot, are in it unacknowledged, so
    the seek keeps them in NEW); NEW's undo snapshot and the seek, only if every copy on was
    confirmed. One audit record of whatever was changed, also when a step fails; a snapshot
    of OLD nothing used is deleted."""
    from events_infra.dlq.handover import (
        Handover,
        drop_snapshot,
        earlier_handovers,
        seek_new,
        snapshot_old,
    )
    from events_infra.dlq.interrupts import deferred_stop

    target, old, new = ctx.target, request.old, request.new
    backlog = backlog_of(ctx, walk=False, subscription=old)  # Monitoring's, if any
    replays = old in ctx.subscription_names  # dlq replay may have targeted OLD
    result: dict[str, Any] = {
        "dry_run": request.dry_run,
        "interrupted": False,
        "from": old,
        "to": new,
        "method": "seek",
        "handed_over": False,
        "old_backlog": backlog[0] if backlog else None,
        "counts": {},
        "possibly_remaining": None,
        "also_reaches": reaches,
        "snapshot": None,
        "undo_snapshot": None,
        "journal": None,
    }
    if request.dry_run:
        if replays:  # how many replay copies the real run would copy on
            _record(result, _replays_to_new(ctx, request, old_live, new_live, backlog, None, True))
        return result
    with ctx.errors(f"snapshots of project {target.project}", MIGRATE_GRANTS):
        earlier = earlier_handovers(ctx.subscriber, target, old)
    if earlier:
        io.warn(
            f"a handover of {old} was begun before (snapshot {earlier[-1]}): if it was "
            f"completed, seeking {new} again delivers once more what {new}'s consumers "
            "acknowledged since"
        )
    io.confirm(
        f"Hand the backlog of {old} to {new} ({target.project}) by seeking {new} to a snapshot "
        f"of {old}? {new} continues where {old}'s consumers stopped: what they acknowledged "
        f"counts as done in {new}, what {new}'s consumers acknowledged since comes again. "
        f"Nothing is published but copies dlq replay targeted at {old}; {old} is kept."
    )
    guard = partial(ctx.errors, permission_hint=MIGRATE_GRANTS)
    snapshot = snapshot_old(ctx.subscriber, target, old, guard)  # before any scan of OLD
    result["snapshot"] = snapshot
    done: Handover | None = None
    moved: list[str] = []
    attempted = False
    try:
        if replays and unaccepted:  # a scan that changes nothing, then the copy on, if any
            check = _replays_to_new(ctx, request, old_live, new_live, backlog, None, True)
            _refuse_unless_clear(check, request, unaccepted, result)
            if result["interrupted"]:
                io.warn(f"stopped before the seek: {new} was not handed over; run it again")
                return result
            replays = False  # none to copy on
        if replays:
            moved = _copy_replays_on(ctx, request, io, old_live, new_live, backlog, result)
            if result["interrupted"] or result["counts"]["failed"] or result["possibly_remaining"]:
                io.warn(
                    f"{new} was not handed over: not every copy dlq replay targeted at {old} was "
                    "copied on; run the same command again"
                )
                return result
        attempted = True  # from here on, NEW may have been seeked whatever happens
        try:
            with deferred_stop():  # two quick calls: a stop waits for them, then is said
                done = seek_new(
                    ctx.subscriber, target, new, snapshot, request.snapshot, guard, io.say
                )
        except KeyboardInterrupt:
            if done is None:  # a second stop broke off between the calls: rerun it
                raise
            io.warn("stopped: the handover had begun, so it was finished first")
        if done.undo_problem:
            io.warn(f"no snapshot of {new} before the seek ({done.undo_problem}): no undo by seek")
        result.update(handed_over=True, undo_snapshot=done.undo_snapshot)
        return result
    finally:
        changed = attempted or bool(moved) or result["journal"] is not None
        if not changed:  # stopped before anything changed: the snapshot is not needed
            with contextlib.suppress(Exception):
                drop_snapshot(ctx.subscriber, snapshot)
            result["snapshot"] = None
        else:
            audit_migrate(
                ctx,
                request,
                "seek",
                old_backlog=result["old_backlog"],
                handed_over=result["handed_over"],
                seek_attempted=attempted,
                snapshot=result["snapshot"],
                undo_snapshot=result["undo_snapshot"],
                counts=result["counts"],
                journal=result["journal"],
                message_ids=moved,
                interrupted=result["interrupted"],
            )


def _refuse_unless_clear(
    check: Any, request: MigrateRequest, unaccepted: list[str], result: dict[str, Any]
) -> None:
    """After the no-change scan: refuse (nothing changed) when OLD holds replay copies whose
    copy on would reach an unaccepted subscription, or when part of OLD was not seen."""
    _record(result, check)
    if check.interrupted:
        return
    if check.possibly_remaining:
        raise DlqError(
            f"up to {check.possibly_remaining} messages of {request.old} were not seen (Pub/Sub "
            "answered with nothing new for 30 s), so copies dlq replay targeted at it may be "
            "missed; run it again; nothing was changed"
        )
    if check.would_move:
        raise DlqError(
            f"{len(check.would_move)} copies dlq replay targeted at {request.old} are in it: "
            f"NEW's replay filter refuses them, so they are copied on to {request.new}, and "
            f"that copy would reach {', '.join(unaccepted)} too. Accept that with --by seek "
            + " ".join(f"--also-reach {name}" for name in unaccepted)
            + "; nothing was changed"
        )


def _record(result: dict[str, Any], summary: Any) -> None:
    result["counts"] = summary.counts()
    result["interrupted"] = summary.interrupted
    result["possibly_remaining"] = summary.possibly_remaining


def _copy_replays_on(
    ctx: DlqContext,
    request: MigrateRequest,
    io: Interaction,
    old_live: Any,
    new_live: Any,
    backlog: tuple[int, bool] | None,
    result: dict[str, Any],
) -> list[str]:
    """Copy the replay copies for OLD on to NEW, journalled; record it in `result`; return
    OLD's message ids moved."""
    from events_infra.dlq.journal import Journal, new_journal_path

    journal = Journal(new_journal_path(request.old, "migrate"))
    try:
        summary = _replays_to_new(ctx, request, old_live, new_live, backlog, journal, False)
    finally:
        result["journal"] = close_journal(journal)
    _record(result, summary)
    if summary.moved and result["also_reaches"]:
        io.warn(
            f"{len(summary.moved)} copies dlq replay had targeted at {request.old} were copied "
            f"on, targeted at {request.new}: {', '.join(result['also_reaches'])} received them "
            "once more (consumers dedupe by event_id)"
        )
    warn_left(summary, request, io)
    return summary.moved


def _replays_to_new(
    ctx: DlqContext,
    request: MigrateRequest,
    old_live: Any,
    new_live: Any,
    backlog: tuple[int, bool] | None,
    journal: Any,
    dry_run: bool,
) -> Any:
    """Copy to NEW just the messages in OLD that `dlq replay` had targeted at OLD."""
    old = request.old

    def targeted_at_old(letter: DeadLetter) -> bool:
        return letter.attributes.get(REPLAY_TARGET) == old

    cutoff = datetime.now(UTC)
    return move(
        ctx, request, old_live, new_live, backlog, cutoff, journal, dry_run, only=targeted_at_old
    )
