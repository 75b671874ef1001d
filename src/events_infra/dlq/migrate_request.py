"""What `eventsctl subscription migrate` is asked to do, and what both of its ways (copies:
`migrate_operation`; a seek: `handover_operation`) say the same way."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from events_infra.dlq.messages import DeadLetter
from events_infra.dlq.operations import Interaction

MIGRATE_GRANTS = (
    "subscription migrate needs roles/pubsub.viewer on the project, roles/pubsub.subscriber on "
    "OLD and NEW, roles/pubsub.publisher on the topic and the snapshot permissions (the "
    "stack's eventsDlqOperator role); a DLQ operator's grants alone do not reach the "
    "consumers' subscriptions"
)


def move(
    ctx: Any,
    request: MigrateRequest,
    old_live: Any,
    new_live: Any,
    backlog: tuple[int, bool] | None,
    cutoff: datetime,
    journal: Any,
    dry_run: bool,
    only: Callable[[DeadLetter], bool] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Any:
    """Copy OLD's backlog from before `cutoff` (or the part `only` picks) to NEW as
    `dlq.migrate` does, its API errors named with the grants the move needs; both routes move
    through here. `backlog`: OLD's count by Monitoring, if any (the scan then knows what to
    cover)."""
    from events_infra.dlq.migrate import MigrateOptions, migrate
    from events_infra.pubsub.filters import parse
    from events_infra.pubsub.paths import subscription_path

    options = MigrateOptions(
        old=request.old,
        old_path=subscription_path(ctx.target.project, request.old),
        new=request.new,
        new_topic_path=ctx.target.topic_path,
        cutoff=cutoff,
        new_filter=parse(new_live.filter) if new_live.filter else None,
        limit=request.limit,
        rate=request.rate,
        dry_run=dry_run,
        journal=journal,
        expected=backlog[0] if backlog else None,
        pull_timeout=ctx.pull_timeout,
        only=only,
    )
    with ctx.errors(f"subscription {request.old!r}", MIGRATE_GRANTS):
        return migrate(
            ctx.publisher,
            ctx.subscriber,
            options,
            ack_deadline_s=old_live.ack_deadline_seconds or 60,
            progress=progress,
        )


def audit_migrate(ctx: Any, request: MigrateRequest, method: str, **fields: Any) -> None:
    """The run's audit record: what every migrate record holds, then `fields`."""
    from events_infra.dlq.audit import append_audit, audit_log_path

    target = ctx.target
    append_audit(
        audit_log_path(request.audit_log),
        "subscription-migrate",
        method=method,
        stack=target.stack,
        project=target.project,
        subscription=request.old,
        to=request.new,
        topic=target.topic,
        **fields,
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
    (targeted copies, below), or `auto`: copies, unless they would reach an unfiltered
    subscription not named in `also_reach` and a seek loses nothing."""


def warn_left(summary: Any, request: MigrateRequest, io: Interaction) -> None:
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
