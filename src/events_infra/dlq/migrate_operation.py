"""`eventsctl subscription migrate` as a person runs it: checks, confirmation, undo point, the
move, the audit record (the same order as `dlq replay`, see `dlq.operations`).

OLD must exist (it may or may not still be declared); NEW must be declared in the stack *and*
exist on the stack's topic, so it already receives what is published from now on. OLD is never
deleted here: removing it from the stack afterwards abandons or deletes it as the stack says.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from events_infra.dlq.context import DlqContext
from events_infra.dlq.errors import DlqError
from events_infra.dlq.handover_operation import hand_over_subscription
from events_infra.dlq.migrate_request import (
    MIGRATE_GRANTS,
    MigrateRequest,
    audit_migrate,
    move,
    warn_left,
)
from events_infra.dlq.operations import Interaction, backlog_of, close_journal
from events_infra.pubsub.attributes import REPLAY_TARGET
from events_infra.pubsub.paths import subscription_path


def migrate_subscription(
    ctx: DlqContext, request: MigrateRequest, io: Interaction
) -> dict[str, Any]:
    """Validate → preflight (both subscriptions live, NEW on the stack's topic) → the method
    (`handover.choose_method`) → confirm → undo points → move → audit; returns the result
    record."""
    from events_infra.dlq.handover import choose_method, seek_refusal

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
    reaches = _also_reaches(ctx, {request.old, request.new})
    unaccepted = sorted(set(reaches) - set(request.also_reach))
    method = choose_method(
        request.method, old_live, new_live, request.limit, request.rate, bool(unaccepted)
    )
    if method == "seek":
        return hand_over_subscription(ctx, request, io, old_live, new_live, reaches, unaccepted)
    cutoff = datetime.now(UTC)  # NEW exists: everything published from here on reaches it
    if unaccepted and not request.dry_run:
        refusal = seek_refusal(old_live, new_live, request.limit, request.rate)
        raise DlqError(
            f"{', '.join(unaccepted)} {'has' if len(unaccepted) == 1 else 'have'} no replay "
            "filter: every copy would reach it too. Accept that with "
            + " ".join(f"--also-reach {name}" for name in unaccepted)
            + " (its consumers dedupe by event_id), or "
            + (
                f"move it without copies (a seek to a snapshot of OLD) once possible: {refusal}"
                if refusal
                else "leave out --by copy: seeking NEW to a snapshot of OLD publishes nothing"
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
    with io.progress(request.limit) as advance:
        summary = move(
            ctx, request, old_live, new_live, backlog, cutoff, journal, request.dry_run,
            progress=advance,
        )  # fmt: skip
    warn_left(summary, request, io)
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
        audit_migrate(
            ctx,
            request,
            "copy",
            rate=request.rate,
            counts=summary.counts(),
            snapshot=snapshot,
            journal=journal_file,
            message_ids=summary.moved,
            failed=summary.failed,
            interrupted=summary.interrupted,
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
    from events_infra.dlq.snapshot import seek_command, take_snapshot
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
        f"snapshot taken; to undo the acks in {request.old}: "
        f"{seek_command(ctx.target.project, request.old, name)}"
    )
    return name, journal
