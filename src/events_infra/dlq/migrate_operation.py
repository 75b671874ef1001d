"""`eventsctl subscription migrate` as a person runs it: checks, confirmation, undo point, the
move, the audit record (the same order as `dlq replay`, see `dlq.operations`).

OLD must exist (it may or may not still be declared); NEW must be declared in the stack *and*
exist on the stack's topic, so it already receives what is published from now on. OLD is never
deleted here: removing it from the stack afterwards abandons or deletes it as the stack says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from events_infra.dlq.context import DlqContext
from events_infra.dlq.errors import DlqError
from events_infra.dlq.operations import Interaction, backlog_of, close_journal
from events_infra.pubsub.attributes import REPLAY_TARGET
from events_infra.pubsub.paths import subscription_path

MIGRATE_GRANTS = (
    "subscription migrate needs roles/pubsub.subscriber on OLD and NEW and the snapshot "
    "permissions (the stack's eventsDlqOperator role); a DLQ operator's grants alone do not "
    "reach the consumers' subscriptions"
)


@dataclass
class MigrateRequest:
    old: str
    new: str
    limit: int | None = None
    rate: float | None = None
    dry_run: bool = False
    snapshot: bool = True
    audit_log: str | None = None
    also_reach: tuple[str, ...] = ()
    """Unfiltered subscriptions the operator accepts copies reaching (`--also-reach`)."""
    method: str = "auto"
    """`seek` (NEW seeked to a snapshot of OLD, nothing published: `dlq.handover`), `copy`
    (targeted copies, below), or `auto`: the seek wherever Pub/Sub allows it."""


def migrate_subscription(
    ctx: DlqContext, request: MigrateRequest, io: Interaction
) -> dict[str, Any]:
    """Validate → preflight (both subscriptions live, NEW on the stack's topic) → the method
    (seek where Pub/Sub allows it) → confirm → undo points → move → audit; returns the result
    record."""
    from events_infra.dlq.audit import append_audit, audit_log_path
    from events_infra.dlq.handover import choose_method, seek_refusal
    from events_infra.dlq.migrate import MigrateOptions, migrate
    from events_infra.pubsub.filters import parse

    target = ctx.target
    _validate(ctx, request)
    old_path = subscription_path(target.project, request.old)
    new_path = subscription_path(target.project, request.new)
    old_live = _live(ctx, request.old, old_path, "nothing to move")
    new_live = _live(
        ctx,
        request.new,
        new_path,
        "it must exist and receive new messages before OLD's backlog is moved: deploy the stack "
        "first (pulumi up / eventsctl local up)",
    )
    if new_live.topic != target.topic_path:
        raise DlqError(
            f"subscription {request.new!r} is attached to {new_live.topic}, not to the stack's "
            f"topic {target.topic_path}: deploy the stack (pulumi up) so NEW is the declared one"
        )
    if choose_method(request.method, old_live, new_live, request.limit, request.rate) == "seek":
        return _hand_over(ctx, request, io)
    cutoff = datetime.now(UTC)  # NEW exists: everything published from here on reaches it
    reaches = _also_reaches(ctx, {request.old, request.new})
    unaccepted = sorted(set(reaches) - set(request.also_reach))
    if unaccepted and not request.dry_run:
        raise DlqError(
            f"{', '.join(unaccepted)} {'has' if len(unaccepted) == 1 else 'have'} no replay "
            "filter: every copy would reach it too. Accept that with "
            + " ".join(f"--also-reach {name}" for name in unaccepted)
            + " (its consumers dedupe by event_id), or "
            + (
                "leave out --by copy: seeking NEW to a snapshot of OLD publishes nothing"
                if request.method == "copy"
                else "make a seek possible ("
                + seek_refusal(old_live, new_live, request.limit, request.rate)
                + "; a seek to a snapshot of OLD publishes nothing)"
            )
        )
    if not request.dry_run:
        io.confirm(
            f"Move the backlog of {request.old} (messages published before now) to "
            f"{request.new} ({target.project})? {request.old} itself is kept."
        )
    if reaches:
        then = (
            "; the real run refuses unless each is named with --also-reach"
            if unaccepted
            else " (accepted with --also-reach; its consumers dedupe by event_id)"
        )
        io.warn(
            f"{', '.join(reaches)} {'has' if len(reaches) == 1 else 'have'} no replay filter: "
            f"every copy reaches it as well{then}"
        )
    snapshot, journal = _undo_points(ctx, request, io)
    backlog = backlog_of(ctx, walk=False, subscription=request.old)  # Monitoring's, if any
    options = MigrateOptions(
        old=request.old,
        old_path=old_path,
        new=request.new,
        new_topic_path=target.topic_path,
        cutoff=cutoff,
        new_filter=parse(new_live.filter) if new_live.filter else None,
        limit=request.limit,
        rate=request.rate,
        dry_run=request.dry_run,
        journal=journal,
        expected=backlog[0] if backlog else None,  # with it the scan knows what to cover
        pull_timeout=ctx.pull_timeout,
    )
    with (
        io.progress(request.limit) as advance,
        ctx.errors(f"subscription {request.old!r}", MIGRATE_GRANTS),
    ):
        summary = migrate(
            ctx.publisher,
            ctx.subscriber,
            options,
            ack_deadline_s=old_live.ack_deadline_seconds or 60,
            progress=advance,
        )
    _warn_left(summary, request, io)
    journal_file = close_journal(journal)
    result = {
        "dry_run": request.dry_run,
        "interrupted": summary.interrupted,
        "from": request.old,
        "to": request.new,
        "method": "copy",
        "counts": summary.counts(),
        "possibly_remaining": summary.possibly_remaining,
        "also_reaches": reaches,
        "snapshot": snapshot,
        "journal": journal_file,
    }
    if not request.dry_run:
        append_audit(
            audit_log_path(request.audit_log),
            "subscription-migrate",
            method="copy",
            stack=target.stack,
            project=target.project,
            subscription=request.old,
            to=request.new,
            topic=target.topic,
            rate=request.rate,
            counts=summary.counts(),
            snapshot=snapshot,
            journal=journal_file,
            message_ids=summary.moved,
            failed=summary.failed,
            interrupted=summary.interrupted,
        )
    return result


def _hand_over(ctx: DlqContext, request: MigrateRequest, io: Interaction) -> dict[str, Any]:
    """The seek: confirm → NEW's undo snapshot, OLD's snapshot, seek → audit."""
    from events_infra.dlq.audit import append_audit, audit_log_path
    from events_infra.dlq.handover import Handover, hand_over, undo_command
    from events_infra.dlq.interrupts import deferred_stop

    target, old, new = ctx.target, request.old, request.new
    backlog = backlog_of(ctx, walk=False, subscription=old)  # Monitoring's, if any
    result: dict[str, Any] = {
        "dry_run": request.dry_run,
        "interrupted": False,
        "from": old,
        "to": new,
        "method": "seek",
        "old_backlog": backlog[0] if backlog else None,
        "counts": {},
        "also_reaches": [],
        "snapshot": None,
        "undo_snapshot": None,
        "journal": None,
    }
    if request.dry_run:
        return result
    io.confirm(
        f"Hand the backlog of {old} to {new} ({target.project}) by seeking {new} to a snapshot "
        f"of {old}? {new} continues where {old}'s consumers stopped: what they acknowledged "
        f"counts as done in {new}, what {new}'s consumers acknowledged since comes again. "
        f"Nothing is published; {old} is kept."
    )
    done: Handover | None = None
    with ctx.errors(f"subscription {new!r}", MIGRATE_GRANTS):
        try:
            with deferred_stop():  # three quick calls: a stop waits for them, then is reported
                done = hand_over(ctx.subscriber, target, old, new, undo=request.snapshot)
        except KeyboardInterrupt:
            if done is None:  # a second stop broke off between the calls: rerun it
                raise
            io.warn("stopped: the handover had begun, so it was finished first")
    if done.undo_problem:
        io.warn(f"no snapshot of {new} before the seek ({done.undo_problem}): no undo by seek")
    if done.undo_snapshot:
        io.say(f"to undo the handover: {undo_command(target, new, done.undo_snapshot)}")
    result.update(snapshot=done.snapshot, undo_snapshot=done.undo_snapshot)
    append_audit(
        audit_log_path(request.audit_log),
        "subscription-migrate",
        method="seek",
        stack=target.stack,
        project=target.project,
        subscription=old,
        to=new,
        topic=target.topic,
        old_backlog=result["old_backlog"],
        snapshot=done.snapshot,
        undo_snapshot=done.undo_snapshot,
    )
    return result


def _validate(ctx: DlqContext, request: MigrateRequest) -> None:
    from events_infra.dlq.handover import METHODS

    if request.method not in METHODS:
        raise DlqError(f"--by {request.method}: use {', '.join(METHODS)}")
    if request.old == request.new:
        raise DlqError(f"--to {request.new}: OLD and NEW are the same subscription")
    if request.rate is not None and request.rate <= 0:
        raise DlqError(f"--rate {request.rate}: use a positive number of messages per second")
    if request.limit is not None and request.limit < 1:
        raise DlqError(f"--limit {request.limit}: use 1 or more")
    if request.new not in ctx.subscription_names:
        raise DlqError(
            f"--to {request.new}: no subscription {request.new!r} in stack {ctx.target.stack} "
            f"(it has: {', '.join(sorted(ctx.subscription_names))}); declare NEW in the stack "
            "and deploy it first"
        )


def _live(ctx: DlqContext, name: str, path: str, not_found: str) -> Any:
    """The live subscription, fetched once and fast; NotFound says what to do."""
    from google.api_core import exceptions as gexc

    from events_infra.dlq.clients import PREFLIGHT_TIMEOUT_S

    with ctx.errors(f"subscription {name!r}", MIGRATE_GRANTS):
        try:
            return ctx.subscriber.get_subscription(
                subscription=path, timeout=PREFLIGHT_TIMEOUT_S, retry=None
            )
        except gexc.NotFound:
            raise DlqError(
                f"subscription {name!r} does not exist in project {ctx.target.project}: {not_found}"
            ) from None


def _also_reaches(ctx: DlqContext, skip: set[str]) -> list[str]:
    """Subscriptions on the topic (declared or not) whose filter does not look at
    `replay_target`: a copy targeted at NEW reaches them too."""
    from events_infra.pubsub.api_calls import bounded

    with ctx.errors(f"topic {ctx.target.topic!r}", MIGRATE_GRANTS):
        attached = ctx.publisher.list_topic_subscriptions(
            request={"topic": ctx.target.topic_path}, **bounded()
        )
        names = sorted(path.rsplit("/", 1)[-1] for path in attached)
        reaches = []
        for name in names:
            if name in skip:
                continue
            live = ctx.subscriber.get_subscription(
                subscription=subscription_path(ctx.target.project, name), **bounded()
            )
            if REPLAY_TARGET not in live.filter:
                reaches.append(name)
    return reaches


def _undo_points(
    ctx: DlqContext, request: MigrateRequest, io: Interaction
) -> tuple[str | None, Any]:
    """A snapshot of OLD (seeking OLD back to it undoes the acks) where Pub/Sub allows one,
    and the journal of every message acknowledged in OLD, written before the ack."""
    if request.dry_run:
        return None, None
    from dataclasses import replace

    from google.api_core import exceptions as gexc

    from events_infra.dlq.journal import Journal, new_journal_path
    from events_infra.dlq.snapshot import take_snapshot
    from events_infra.pubsub.api_calls import error_detail

    journal = Journal(new_journal_path(request.old, "migrate"))
    io.say(f"journal of every message moved: {journal.path}")
    if not request.snapshot:
        return None, journal
    old_target = replace(ctx.target, dead_letter_subscription=request.old)
    try:
        name = take_snapshot(ctx.subscriber, old_target, "migrate")
    except gexc.GoogleAPICallError as err:
        io.warn(f"no snapshot of {request.old} ({error_detail(err)}); the journal remains")
        return None, journal
    io.say(
        f"snapshot taken; to undo the acks in {request.old}: gcloud pubsub subscriptions seek "
        f"{request.old} --snapshot={name.rsplit('/', 1)[-1]} --project={ctx.target.project}"
    )
    return name, journal


def _warn_left(summary: Any, request: MigrateRequest, io: Interaction) -> None:
    """One line per reason messages stayed in OLD."""
    if summary.refused_by_new:
        io.warn(
            f"{len(summary.refused_by_new)} messages stayed in {request.old}: {request.new}'s "
            "filter would drop their copies (that is the new filter's choice; export them with "
            "a pull if someone still needs them)"
        )
    if summary.failed:
        io.warn(
            f"{len(summary.failed)} copies were not confirmed by Pub/Sub: they stayed in "
            f"{request.old}; run the same command again"
        )
    if summary.possibly_remaining:
        io.warn(
            f"up to {summary.possibly_remaining} messages of {request.old}'s backlog were not "
            "seen (Pub/Sub answered with nothing new for 30 s); run the command again"
        )
