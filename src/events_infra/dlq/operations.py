"""The DLQ operations as a person runs them: checks, confirmation, undo point, the work, the
audit record. `eventsctl dlq` calls these and only renders what they return; a script can call
them the same way with its own `Interaction`.

Replay and purge follow one order: validate → preflight (Pub/Sub reachable, the subscription
readable) → confirm → undo points (the journal always; a snapshot where Pub/Sub allows) → the
operation (acknowledging nothing before its undo record is on disk) → audit record.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from events_infra.dlq.context import DlqContext
from events_infra.dlq.errors import DlqError
from events_infra.pubsub.paths import topic_path


def _quiet_progress(_total: int | None) -> contextlib.AbstractContextManager[Callable[[int], None]]:
    return contextlib.nullcontext(lambda _n: None)


@dataclass
class Interaction:
    """How an operation talks to its caller: `confirm` raises DlqError when the answer is no;
    `say` and `warn` are one-line messages; `progress(total)` is a context manager yielding an
    `advance(n)` callable."""

    confirm: Callable[[str], None]
    say: Callable[[str], None] = lambda _text: None
    warn: Callable[[str], None] = lambda _text: None
    progress: Callable[[int | None], Any] = _quiet_progress
    watching: bool = False
    """Someone watches the progress (a terminal): where no Monitoring figure exists (the
    emulator), the backlog is counted first so the bar has a total and an ETA."""


@dataclass
class ReplayRequest:
    selection_flags: dict[str, Any] = field(default_factory=dict)
    """sources / attributes / older_than / newer_than, as `parse_selection` takes them."""
    limit: int | None = None
    rate: float | None = None
    broadcast: bool = False
    to: str | None = None
    max_replays: int = 3
    dry_run: bool = False
    snapshot: bool = True
    audit_log: str | None = None


def replay_dead_letters(ctx: DlqContext, request: ReplayRequest, io: Interaction) -> dict[str, Any]:
    """Confirm → undo points → replay → audit; returns the result record (see docs/runbook.md)."""
    from events_infra.dlq.audit import append_audit, audit_log_path
    from events_infra.dlq.replay import ReplayOptions, replay
    from events_infra.dlq.selection import parse_selection

    target = ctx.target
    known = ctx.subscription_names
    if request.rate is not None and request.rate <= 0:
        raise DlqError(f"--rate {request.rate}: use a positive number of messages per second")
    if request.max_replays < 1:
        raise DlqError(f"--max-replays {request.max_replays}: use 1 or more")
    if request.to is not None and request.broadcast:
        raise DlqError("--to and --broadcast cannot be used together: choose one")
    if request.to is not None and request.to not in known:
        raise DlqError(
            f"--to {request.to}: no subscription {request.to!r} in stack {target.stack} "
            f"(it has: {', '.join(sorted(known))})"
        )
    selection = parse_selection(target, **request.selection_flags)
    live = ctx.preflight()
    wants_count = not request.dry_run and (_asks(io) or io.watching)
    backlog = backlog_of(ctx, walk=wants_count, say=io.say)
    if not request.dry_run:
        scope = (
            "all subscriptions"
            if request.broadcast
            else (request.to or "the subscription that failed each one")
        )
        held = "?" if backlog is None else f"{'about ' if backlog[1] else ''}{backlog[0]}"
        io.confirm(
            f"Replay {'up to ' + str(request.limit) if request.limit else 'all matching'} dead "
            f"letters from {target.dead_letter_subscription} ({target.project}; it holds "
            f"{held}) to {scope}?"
        )
    unfiltered = unfiltered_subscriptions(ctx)
    if unfiltered and not request.broadcast:
        io.warn(
            f"{', '.join(unfiltered)} {'has' if len(unfiltered) == 1 else 'have'} no replay "
            "filter (replay_filter: false): every replayed copy reaches "
            f"{'it' if len(unfiltered) == 1 else 'them'}, also those targeted at other "
            "subscriptions; consumers dedupe them by event_id (old-path messages only with "
            "LegacyMessages(id_field=...))"
        )
    snapshot, journal = undo_points(ctx, "replay", request.dry_run, request.snapshot, io)
    options = ReplayOptions(
        selection=selection,
        limit=request.limit,
        rate=request.rate,
        broadcast=request.broadcast,
        to=request.to,
        known_sources=known,
        max_replays=request.max_replays,
        dry_run=request.dry_run,
        pull_timeout=ctx.pull_timeout,
        journal=journal,
        expected=None if backlog is None else backlog[0],
    )
    filtered = any(request.selection_flags.values())
    total = (
        request.limit
        if backlog is None or filtered
        else min(request.limit or backlog[0], backlog[0])
    )
    with io.progress(total) as advance, ctx.errors():
        summary = replay(
            ctx.publisher,
            ctx.subscriber,
            target,
            options,
            ack_deadline_s=live.ack_deadline_seconds or 60,
            progress=advance,
        )
    _warn_left(summary, request.max_replays, io)
    if summary.possibly_remaining:
        io.warn(
            f"the DLQ held {backlog[0] if backlog else '?'} dead letters at the start but only "
            f"{backlog[0] - summary.possibly_remaining if backlog else '?'} were seen: up to "
            f"{summary.possibly_remaining} may remain (Pub/Sub answered with nothing new for "
            "30 s); run the command again"
        )
    journal_file = close_journal(journal)
    result = {
        "dry_run": request.dry_run,
        "interrupted": summary.interrupted,
        "counts": summary.counts(),
        "left_in_dlq": summary.left,
        "possibly_remaining": summary.possibly_remaining,
        "by_target": summary.by_target,
        "also_reaches": unfiltered,
        "snapshot": snapshot,
        "journal": journal_file,
        "message_ids": summary.would_replay if request.dry_run else summary.replayed,
    }
    if not request.dry_run:
        append_audit(
            audit_log_path(request.audit_log),
            "replay",
            stack=target.stack,
            project=target.project,
            subscription=target.dead_letter_subscription,
            topic=target.topic,
            filter=selection.describe(),
            broadcast=request.broadcast,
            rate=request.rate,
            counts=summary.counts(),
            snapshot=snapshot,
            journal=journal_file,
            message_ids=summary.replayed,
            duplicates=summary.duplicates,
            poison=summary.poison,
            failed=summary.failed,
            unroutable=summary.unroutable,
            interrupted=summary.interrupted,
        )
    return result


def unfiltered_subscriptions(ctx: DlqContext) -> list[str]:
    """Subscriptions the stack declares without the replay filter: a targeted copy still
    reaches them (sorted, for messages)."""
    return sorted(s.name for s in ctx.topology.subscriptions if not s.replay_filter)


@dataclass
class PurgeRequest:
    selection_flags: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None
    exported: Path | None = None
    dry_run: bool = False
    yes: bool = False
    snapshot: bool = True
    audit_log: str | None = None


def purge_dead_letters(ctx: DlqContext, request: PurgeRequest, io: Interaction) -> dict[str, Any]:
    """Validate → confirm → undo points → purge → audit; returns the result record."""
    from events_infra.dlq.audit import append_audit, audit_log_path
    from events_infra.dlq.peek import read_export
    from events_infra.dlq.replay import purge
    from events_infra.dlq.selection import parse_selection

    target = ctx.target
    selection = parse_selection(target, **request.selection_flags)
    exported_ids = None
    if request.exported is not None:
        if not request.exported.is_file():
            raise DlqError(f"--exported {request.exported}: no such file")
        try:
            exported_ids = {r["message_id"] for r in read_export(request.exported)}
        except ValueError as err:
            raise DlqError(str(err)) from None
    elif not request.yes and not request.dry_run:
        raise DlqError(
            "purge removes dead letters for good: export them first "
            f"(eventsctl dlq export --stack {target.stack} --out FILE, then purge --exported "
            "FILE) or pass --yes"
        )
    ctx.preflight()
    if exported_ids is not None and not request.dry_run:
        io.confirm(
            f"Remove the {len(exported_ids)} exported dead letters from "
            f"{target.dead_letter_subscription}?"
        )
    backlog = backlog_of(ctx, walk=False)  # Monitoring's estimate where there is one
    snapshot, journal = undo_points(ctx, "purge", request.dry_run, request.snapshot, io)
    with ctx.errors():
        summary = purge(
            ctx.subscriber,
            target,
            selection,
            exported_ids,
            request.limit,
            request.dry_run,
            ctx.pull_timeout,
            journal,
            expected=None if backlog is None else backlog[0],
        )
    if summary.possibly_remaining:
        io.warn(
            f"up to {summary.possibly_remaining} dead letters may not have been looked at "
            "(Pub/Sub answered with nothing new for 30 s); run the command again"
        )
    journal_file = close_journal(journal)
    if not request.dry_run:
        append_audit(
            audit_log_path(request.audit_log),
            "purge",
            stack=target.stack,
            project=target.project,
            subscription=target.dead_letter_subscription,
            filter=selection.describe(),
            exported_file=str(request.exported) if request.exported else None,
            counts={"purged": len(summary.purged)},
            interrupted=summary.interrupted,
            snapshot=snapshot,
            journal=journal_file,
            message_ids=summary.purged,
        )
    return {
        "dry_run": request.dry_run,
        "interrupted": summary.interrupted,
        "purged": len(summary.purged),
        "not_exported": summary.not_exported,
        "not_selected": summary.not_selected,
        "possibly_remaining": summary.possibly_remaining,
        "snapshot": snapshot,
        "journal": journal_file,
    }


def restore_dead_letters(
    ctx: DlqContext,
    snapshot: str | None,
    journal: Path | None,
    io: Interaction,
    audit_log: str | None = None,
) -> str:
    """Undo a replay or purge from its snapshot (seek) or its journal (publish back); return
    a one-line account of what was done."""
    from events_infra.dlq.audit import append_audit, audit_log_path
    from events_infra.dlq.journal import restore_journal
    from events_infra.dlq.peek import read_export
    from events_infra.dlq.snapshot import restore

    if (snapshot is None) == (journal is None):
        raise DlqError("give one of --snapshot ID or --journal FILE")
    target = ctx.target
    ctx.preflight()
    if journal is not None:
        try:
            records = read_export(journal)
        except (OSError, ValueError) as err:
            raise DlqError(f"--journal {journal}: {err}") from None
        dlq_topic = topic_path(target.project, ctx.topology.dead_letter.topic)
        io.confirm(
            f"Publish the {len(records)} dead letters of {journal.name} back to {dlq_topic}?"
        )
        with ctx.errors(f"topic {dlq_topic!r}"):
            restored = restore_journal(ctx.publisher, dlq_topic, records)
        append_audit(
            audit_log_path(audit_log),
            "restore",
            stack=target.stack,
            project=target.project,
            journal=str(journal),
            message_ids=restored,
        )
        if len(restored) < len(records):
            raise DlqError(
                f"{len(records) - len(restored)} of {len(records)} could not be published back; "
                "the audit log lists those that were"
            )
        return f"{len(restored)} of {len(records)} dead letters published back to {dlq_topic}"
    assert snapshot is not None
    io.confirm(f"Seek {target.dead_letter_subscription} back to {snapshot}?")
    with ctx.errors(f"snapshot {snapshot!r}"):
        name = restore(ctx.subscriber, target, snapshot)
    append_audit(audit_log_path(audit_log), "restore", stack=target.stack,
                 project=target.project, snapshot=name)  # fmt: skip
    return f"{target.dead_letter_subscription} restored to {name}"


# --- the pieces ---------------------------------------------------------------------------------


def backlog_of(
    ctx: DlqContext,
    walk: bool,
    say: Callable[[str], None] | None = None,
    subscription: str | None = None,
) -> tuple[int, bool] | None:
    """(messages the subscription holds, whether that is Cloud Monitoring's estimate):
    Monitoring's figure where there is one (minutes old), else — only if `walk` — counted from
    Pub/Sub by walking the dead-letter subscription (said first via `say`: it takes a moment);
    None when neither. `subscription`: another one than the DLQ's (Monitoring only)."""
    from events_infra.dlq.clients import metrics_client
    from events_infra.dlq.status import dlq_status, latest_metric
    from events_infra.pubsub.metrics import UNDELIVERED

    target = ctx.target
    with ctx.errors():
        metrics = metrics_client()
        if metrics is not None:
            value = latest_metric(
                metrics, target.project, subscription or target.dead_letter_subscription,
                UNDELIVERED,
            )  # fmt: skip
            if value is not None:
                return int(value), True
        if not walk or subscription is not None:
            return None
        if say is not None:
            say(
                f"counting the dead letters in {target.dead_letter_subscription} (no Cloud "
                "Monitoring figure here)..."
            )
        row = dlq_status(ctx.subscriber, target, None, pull_timeout=ctx.pull_timeout)
    return int(row.get("undelivered") or 0), False


def undo_points(
    ctx: DlqContext, operation: str, dry_run: bool, snapshot: bool, io: Interaction
) -> tuple[str | None, Any]:
    """The undo journal (always, unless a dry run) and, where Pub/Sub allows one, a snapshot.
    A refused snapshot (too old a backlog, no permission) is a warning: the journal remains."""
    if dry_run:
        return None, None
    from google.api_core import exceptions as gexc

    from events_infra.dlq.journal import Journal, new_journal_path
    from events_infra.dlq.snapshot import prune_snapshots, take_snapshot, undo_command
    from events_infra.pubsub.api_calls import error_detail

    target = ctx.target
    journal = Journal(new_journal_path(target.dead_letter_subscription, operation))
    io.say(
        f"undo journal: {journal.path} (to undo: eventsctl dlq restore --stack {target.stack} "
        f"--journal {journal.path})"
    )
    if not snapshot:
        return None, journal
    try:
        name = take_snapshot(ctx.subscriber, target, operation)
    except gexc.GoogleAPICallError as err:
        io.warn(f"no snapshot ({error_detail(err)}); the undo journal above is the undo point")
        return None, journal
    io.say(f"snapshot taken; to undo: {undo_command(target, name)}")
    try:
        pruned = prune_snapshots(ctx.subscriber, target)
    except gexc.GoogleAPICallError as err:  # housekeeping only: never stops the operation
        io.warn(f"could not delete older eventsctl snapshots: {err}")
    else:
        if pruned:
            io.say(f"deleted {len(pruned)} older eventsctl snapshot(s)")
    return name, journal


def close_journal(journal: Any) -> str | None:
    """Close it; an empty journal (nothing was acknowledged) is removed."""
    if journal is None:
        return None
    journal.close()
    if journal.count == 0:
        journal.path.unlink(missing_ok=True)
        return None
    return str(journal.path)


def _warn_left(summary: Any, max_replays: int, io: Interaction) -> None:
    """One line per reason letters were left in the DLQ, not one per letter."""
    if summary.poison:
        io.warn(
            f"{len(summary.poison)} dead letters were replayed {max_replays} times already and "
            f"were left in the DLQ: inspect them (eventsctl dlq inspect --attr "
            f"replay_count={max_replays}) before raising --max-replays"
        )
    if summary.unroutable:
        io.warn(
            f"{len(summary.unroutable)} dead letters have no source subscription or one this "
            "stack does not have; their copies would reach no subscription, so they were left "
            "in the DLQ: send them with --to SUBSCRIPTION or --broadcast"
        )


def _asks(io: Interaction) -> bool:
    """Whether `confirm` will really ask (a prompt wants the count); see cli's confirm."""
    return not getattr(io.confirm, "assume_yes", False)


def replay_from_file(
    ctx: DlqContext,
    path: Path,
    request: ReplayRequest,
    io: Interaction,
) -> dict[str, Any]:
    """Publish the records of an export file (edited or not) to the events topic; the
    originals stay in the DLQ until `purge --exported` removes them. Confirm → publish → audit."""
    from events_infra.dlq.audit import append_audit, audit_log_path
    from events_infra.dlq.peek import read_export
    from events_infra.dlq.replay import replay_records

    if not path.is_file():
        raise DlqError(f"--from-file {path}: no such file")
    try:
        records = read_export(path)
    except ValueError as err:
        raise DlqError(str(err)) from None
    if not request.broadcast:
        for record in records:
            ctx.target.check_source(record.get("source_subscription") or "(none)")
    if request.dry_run:
        return {"dry_run": True, "would_publish": len(records), "file": str(path)}
    io.confirm(f"Publish {len(records)} records from {path} to {ctx.target.topic}?")
    ctx.preflight()
    with ctx.errors(f"topic {ctx.target.topic!r}"):
        summary = replay_records(
            ctx.publisher,
            ctx.target,
            records,
            request.broadcast,
            request.rate,
            request.max_replays,
        )
    append_audit(
        audit_log_path(request.audit_log),
        "replay-from-file",
        stack=ctx.target.stack,
        project=ctx.target.project,
        topic=ctx.target.topic,
        file=str(path),
        counts={k: len(v) for k, v in vars(summary).items()},
        message_ids=summary.published,
    )
    return {
        "dry_run": False,
        "published": len(summary.published),
        "skipped_poison": len(summary.poison),
        "failed": len(summary.failed),
        "file": str(path),
    }
