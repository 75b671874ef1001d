"""`subscription migrate --by seek` as a person runs it: confirm → NEW's undo snapshot, OLD's
snapshot, the seek (`dlq.handover`) → the copies `dlq replay` had targeted at OLD → audit.

Those copies carry `replay_target=OLD`; NEW's replay filter refuses them, so the seek alone
would leave them in OLD only. Replays can target OLD only while the stack declares it (they go
to a declared source or `--to` a declared subscription), so for an OLD the stack never knew
the seek is all; otherwise OLD is scanned once (nothing else in it is touched) and just those
are copied targeted at NEW, acknowledged in OLD after Pub/Sub confirmed each, journalled, as
`subscription migrate --by copy` moves everything.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from events_infra.dlq.context import DlqContext
from events_infra.dlq.messages import DeadLetter
from events_infra.dlq.migrate_request import (
    MIGRATE_GRANTS,
    MigrateRequest,
    audit_migrate,
    warn_left,
)
from events_infra.dlq.operations import Interaction, backlog_of, close_journal
from events_infra.pubsub.attributes import REPLAY_TARGET
from events_infra.pubsub.paths import subscription_path


def hand_over_subscription(
    ctx: DlqContext,
    request: MigrateRequest,
    io: Interaction,
    old_live: Any,
    new_live: Any,
    reaches: list[str],
) -> dict[str, Any]:
    """The seek route of `migrate_subscription`, past its preflight; returns the result."""
    from events_infra.dlq.handover import Handover, earlier_handovers, hand_over
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
        "old_backlog": backlog[0] if backlog else None,
        "counts": {},
        "also_reaches": reaches,
        "snapshot": None,
        "undo_snapshot": None,
        "journal": None,
    }
    if request.dry_run:
        if replays:  # how many replay copies the real run would re-target
            summary = _replays_to_new(ctx, request, old_live, new_live, backlog, None, True)
            result["counts"] = summary.counts()
        return result
    with ctx.errors(f"snapshots of project {target.project}", MIGRATE_GRANTS):
        earlier = earlier_handovers(ctx.subscriber, target, old)
    if earlier:
        io.warn(
            f"{old} was handed over before (snapshot {earlier[-1]}): seeking {new} again "
            f"delivers once more what {new}'s consumers acknowledged since"
        )
    io.confirm(
        f"Hand the backlog of {old} to {new} ({target.project}) by seeking {new} to a snapshot "
        f"of {old}? {new} continues where {old}'s consumers stopped: what they acknowledged "
        f"counts as done in {new}, what {new}'s consumers acknowledged since comes again. "
        f"Nothing is published but copies dlq replay targeted at {old}; {old} is kept."
    )
    done: Handover | None = None
    try:
        with deferred_stop():  # three quick calls: a stop waits for them, then is reported
            done = hand_over(
                ctx.subscriber,
                target,
                old,
                new,
                undo=request.snapshot,
                guard=lambda what: ctx.errors(what, MIGRATE_GRANTS),
                say=io.say,
            )
    except KeyboardInterrupt:
        if done is None:  # a second stop broke off between the calls: rerun it
            raise
        io.warn("stopped: the handover had begun, so it was finished first")
        if replays:  # the stop is honoured: no scan for the replay copies
            io.warn(f"copies dlq replay targeted at {old} were not looked for: run it again")
            replays, result["interrupted"] = False, True
    assert done is not None
    if done.undo_problem:
        io.warn(f"no snapshot of {new} before the seek ({done.undo_problem}): no undo by seek")
    result.update(snapshot=done.snapshot, undo_snapshot=done.undo_snapshot)
    moved: list[str] = []
    if replays:
        from events_infra.dlq.journal import Journal, new_journal_path

        journal = Journal(new_journal_path(old, "migrate"))
        summary = _replays_to_new(ctx, request, old_live, new_live, backlog, journal, False)
        result["journal"] = close_journal(journal)
        result["counts"] = summary.counts()
        result["interrupted"] = summary.interrupted
        moved = summary.moved
        if moved and reaches:
            io.warn(
                f"{len(moved)} copies dlq replay had targeted at {old} were copied again, "
                f"targeted at {new}: {', '.join(reaches)} received them once more (consumers "
                "dedupe by event_id)"
            )
        warn_left(summary, request, io)
    audit_migrate(
        ctx,
        request,
        "seek",
        old_backlog=result["old_backlog"],
        snapshot=done.snapshot,
        undo_snapshot=done.undo_snapshot,
        counts=result["counts"],
        journal=result["journal"],
        message_ids=moved,
        interrupted=result["interrupted"],
    )
    return result


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
    from events_infra.dlq.migrate import MigrateOptions, migrate
    from events_infra.pubsub.filters import parse

    old = request.old

    def targeted_at_old(letter: DeadLetter) -> bool:
        return letter.attributes.get(REPLAY_TARGET) == old

    options = MigrateOptions(
        old=old,
        old_path=subscription_path(ctx.target.project, old),
        new=request.new,
        new_topic_path=ctx.target.topic_path,
        cutoff=datetime.now(UTC),
        new_filter=parse(new_live.filter) if new_live.filter else None,
        dry_run=dry_run,
        journal=journal,
        expected=backlog[0] if backlog else None,
        pull_timeout=ctx.pull_timeout,
        only=targeted_at_old,
    )
    with ctx.errors(f"subscription {old!r}", MIGRATE_GRANTS):
        return migrate(
            ctx.publisher,
            ctx.subscriber,
            options,
            ack_deadline_s=old_live.ack_deadline_seconds or 60,
        )
