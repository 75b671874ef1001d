"""`eventsctl dlq`: see, inspect, replay, export and purge dead letters, and check the setup.

Every command finds its topic and subscriptions from the stack file (`--stack prod`), works
against the emulator when PUBSUB_EMULATOR_HOST is set, prints data on stdout and messages on
stderr, and exits 2 with one line on any error (nothing acknowledged).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import typer

from cli import options
from cli.errors import Exit, UserError, user_errors
from cli.render import emit, table

app = typer.Typer(
    help="Dead letters: status, inspect, replay to the subscription that failed them, "
    "export, purge, restore and doctor.",
    no_args_is_help=True,
)

SOURCE = typer.Option(
    None, "--source", help="Only dead letters from this subscription (repeatable)."
)
ATTR = typer.Option(
    None, "--attr", help="Only dead letters with attribute KEY=VALUE (repeatable; all must match)."
)
OLDER = typer.Option(
    None, "--older-than", help="Only dead letters in the DLQ longer than this (e.g. 1h)."
)
NEWER = typer.Option(
    None, "--newer-than", help="Only dead letters in the DLQ for less than this (e.g. 30m)."
)
NO_SNAPSHOT = typer.Option(
    False, "--no-snapshot", help="Do not snapshot the DLQ subscription first (no undo)."
)
AUDIT_LOG = typer.Option(
    None,
    "--audit-log",
    envvar="EVENTSCTL_AUDIT_LOG",
    help="JSONL file the operation is recorded in (default ~/.local/state/eventsctl/audit.jsonl).",
)


class Context:
    """The resolved stack, target and clients one command works with."""

    def __init__(
        self,
        stack: str,
        stacks_dir: str | None,
        project: str | None,
        topic: str | None,
        dlq_subscription: str | None,
    ) -> None:
        from cli.dlq.target import resolve
        from components.stack_files import load_stack
        from components.stack_files import stacks_dir as find_dir

        self.topology = load_stack(stack, find_dir(stacks_dir))
        self.target = resolve(stack, self.topology, project, topic, dlq_subscription)
        self.pull_timeout = 0.5 if self.target.emulator else 2.0
        self._subscriber: Any = None
        self._publisher: Any = None

    @property
    def subscriber(self) -> Any:
        """Created on first use; missing credentials are a one-line error, not a traceback."""
        if self._subscriber is None:
            from cli.dlq.clients import subscriber_client

            with self.errors():
                self._subscriber = subscriber_client()
        return self._subscriber

    @property
    def publisher(self) -> Any:
        if self._publisher is None:
            from cli.dlq.clients import publisher_client

            with self.errors():
                self._publisher = publisher_client()
        return self._publisher

    def preflight(self) -> Any:
        from cli.dlq.clients import preflight

        return preflight(self.subscriber, self.target)

    def errors(self, what: str | None = None) -> Any:
        from cli.dlq.clients import pubsub_errors

        return pubsub_errors(self.target, what)


def _context(
    stack: str,
    stacks_dir: str | None,
    project: str | None,
    topic: str | None,
    dlq_subscription: str | None,
) -> Context:
    return Context(stack, stacks_dir, project, topic, dlq_subscription)


def _limit(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise UserError(f"--limit {value}: use 1 or more")
    return value


def _warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


# --- status -------------------------------------------------------------------------------------


@app.command("status")
def status_command(
    stack: str = options.STACK,
    stacks_dir: str = options.STACKS_DIR,
    project: str = options.PROJECT,
    dlq_subscription: str = options.DLQ_SUBSCRIPTION,
    as_json: bool = options.JSON,
    watch: bool = typer.Option(False, "--watch", help="Refresh until Ctrl-C."),
    interval: float = typer.Option(10.0, "--interval", help="Seconds between refreshes."),
    refreshes: int = typer.Option(0, "--refreshes", hidden=True, help="Stop after N (tests)."),
) -> None:
    """How many dead letters, how old, and from which subscriptions.

    Shows the undelivered count and oldest age (from Cloud Monitoring, the metric the alert
    watches; counted from Pub/Sub on the emulator), the alert threshold, and a breakdown by
    source subscription. Exit 0 below the threshold, 1 above it, 2 on error.
    """
    from cli.dlq.clients import metrics_client
    from cli.dlq.status import dlq_status

    shown = 0
    while True:
        with user_errors():
            ctx = _context(stack, stacks_dir, project, None, dlq_subscription)
            ctx.preflight()
            with ctx.errors():
                row = dlq_status(
                    ctx.subscriber, ctx.target, metrics_client(), pull_timeout=ctx.pull_timeout
                )
        emit(row, as_json, _print_status)
        typer.echo(row["note"], err=True)
        shown += 1
        if not watch or (refreshes and shown >= refreshes):
            break
        try:
            time.sleep(interval)
        except KeyboardInterrupt:
            break
    raise typer.Exit(int(Exit.FOUND if row["above_threshold"] else Exit.OK))


def _print_status(row: dict[str, Any]) -> None:
    from components.durations import human_duration

    oldest = row["oldest_age_s"]
    table(
        f"dead letters ({row['stack']}, project {row['project']})",
        ["subscription", "undelivered", "oldest", "threshold", "state"],
        [
            [
                row["subscription"],
                row["undelivered"],
                "-" if oldest is None else human_duration(round(oldest)),
                f"> {row['threshold']:g}",
                "ABOVE THRESHOLD" if row["above_threshold"] else "ok",
            ]
        ],
    )
    if row["by_source"]:
        table(
            f"by source subscription (of {row['by_source_sampled']} looked at)",
            ["source subscription", "dead letters"],
            [[name, count] for name, count in row["by_source"].items()],
        )


# --- inspect / export ---------------------------------------------------------------------------


@app.command("inspect")
def inspect_command(
    stack: str = options.STACK,
    stacks_dir: str = options.STACKS_DIR,
    project: str = options.PROJECT,
    dlq_subscription: str = options.DLQ_SUBSCRIPTION,
    source: list[str] = SOURCE,
    attr: list[str] = ATTR,
    older_than: str = OLDER,
    newer_than: str = NEWER,
    limit: int = typer.Option(10, "--limit", help="Show at most this many."),
    as_json: bool = options.JSON,
) -> None:
    """Look at dead letters without consuming them.

    They stay in the DLQ and are available again at once. Shows id, source subscription,
    delivery count, original publish time, attributes and payload (pretty JSON, or base64
    when binary).
    """
    from cli.dlq.peek import inspect_letters
    from cli.dlq.selection import parse_selection

    with user_errors():
        ctx = _context(stack, stacks_dir, project, None, dlq_subscription)
        selection = parse_selection(ctx.target, source, attr, older_than, newer_than)
        ctx.preflight()
        with ctx.errors():
            letters = inspect_letters(
                ctx.subscriber,
                ctx.target.subscription_path,
                selection,
                _limit(limit),
                pull_timeout=ctx.pull_timeout,
            )
    records = [letter.to_record() for letter in letters]
    emit(records, as_json, _print_letters)


def _print_letters(records: list[dict[str, Any]]) -> None:
    if not records:
        typer.echo("no dead letters match", err=True)
    for record in records:
        typer.echo(
            f"── {record['message_id']}  from {record['source_subscription']}  "
            f"delivered {record['delivery_count']}x  published {record['original_publish_time']}"
            f"  dead-lettered {record['dead_lettered_at']}  replays {record['replay_count']}"
        )
        shown = {
            k: v
            for k, v in record["attributes"].items()
            if not k.startswith("CloudPubSubDeadLetter")
        }
        if shown:
            typer.echo(f"   attributes: {json.dumps(shown, sort_keys=True)}")
        if record["ordering_key"]:
            typer.echo(f"   ordering key: {record['ordering_key']}")
        if "json" in record:
            body = json.dumps(record["json"], indent=2, sort_keys=True)
            typer.echo("   payload (JSON):\n" + "\n".join("     " + ln for ln in body.splitlines()))
        else:
            typer.echo(f"   payload (binary, base64): {record['data_base64'][:400]}")


@app.command("export")
def export_command(
    out: Path = typer.Option(..., "--out", "-o", help="JSONL file to write (replaced if present)."),
    stack: str = options.STACK,
    stacks_dir: str = options.STACKS_DIR,
    project: str = options.PROJECT,
    dlq_subscription: str = options.DLQ_SUBSCRIPTION,
    source: list[str] = SOURCE,
    attr: list[str] = ATTR,
    older_than: str = OLDER,
    newer_than: str = NEWER,
    limit: int = typer.Option(None, "--limit", help="Export at most this many."),
    as_json: bool = options.JSON,
) -> None:
    """Save dead letters to a JSONL file; they stay in the DLQ.

    Keep or edit them before `replay --from-file`; `purge --exported FILE` then removes exactly
    what was saved.
    """
    from cli.dlq.peek import export_letters
    from cli.dlq.selection import parse_selection

    with user_errors():
        ctx = _context(stack, stacks_dir, project, None, dlq_subscription)
        selection = parse_selection(ctx.target, source, attr, older_than, newer_than)
        if not out.parent.is_dir():
            raise UserError(f"--out {out}: folder {out.parent} does not exist")
        ctx.preflight()
        with ctx.errors():
            ids = export_letters(
                ctx.subscriber,
                ctx.target.subscription_path,
                selection,
                _limit(limit),
                out,
                pull_timeout=ctx.pull_timeout,
            )
    emit(
        {"exported": len(ids), "file": str(out)},
        as_json,
        lambda d: typer.echo(f"exported {d['exported']} dead letters to {d['file']}"),
    )


# --- replay -------------------------------------------------------------------------------------


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
    from cli.dlq.audit import append_audit, audit_log_path
    from cli.dlq.replay import ReplayOptions, replay
    from cli.dlq.selection import parse_selection

    with user_errors():
        limit = _limit(limit)
        if rate is not None and rate <= 0:
            raise UserError(f"--rate {rate}: use a positive number of messages per second")
        if max_replays < 1:
            raise UserError(f"--max-replays {max_replays}: use 1 or more")
        ctx = _context(stack, stacks_dir, project, topic, dlq_subscription)
        target = ctx.target
        known = frozenset(s.name for s in ctx.topology.subscriptions)
        if to is not None and broadcast:
            raise UserError("--to and --broadcast cannot be used together: choose one")
        if to is not None and to not in known:
            raise UserError(
                f"--to {to}: no subscription {to!r} in stack {target.stack} "
                f"(it has: {', '.join(sorted(known))})"
            )
        if from_file is not None:
            _replay_file(
                ctx, from_file, broadcast, rate, max_replays, dry_run, yes, audit_log, as_json
            )
            return
        selection = parse_selection(target, source, attr, older_than, newer_than)
        live = ctx.preflight()
        scope = (
            "all subscriptions" if broadcast else (to or "the subscription that failed each one")
        )
        backlog = _backlog(ctx, walk=not yes and not dry_run)
        if not dry_run and not yes:
            held = "?" if backlog is None else f"{'about ' if backlog[1] else ''}{backlog[0]}"
            _confirm(
                yes,
                f"Replay {'up to ' + str(limit) if limit else 'all matching'} dead letters from "
                f"{target.dead_letter_subscription} ({target.project}; it holds {held}) to "
                f"{scope}?",
            )
        snapshot, journal = _undo_points(ctx, "replay", dry_run, no_snapshot)
        replay_options = ReplayOptions(
            selection=selection,
            limit=limit,
            rate=rate,
            broadcast=broadcast,
            to=to,
            known_sources=known,
            max_replays=max_replays,
            dry_run=dry_run,
            pull_timeout=ctx.pull_timeout,
            journal=journal,
        )
        label = "replaying" if not dry_run else "scanning"
        filtered = bool(source or attr or older_than or newer_than)
        total = limit if backlog is None or filtered else min(limit or backlog[0], backlog[0])
        with _progress(label, total) as advance, ctx.errors():
            summary = replay(
                ctx.publisher,
                ctx.subscriber,
                target,
                replay_options,
                ack_deadline_s=live.ack_deadline_seconds or 60,
                progress=advance,
            )
        _warn_left(summary, max_replays)
        journal_file = _close_journal(journal)
        result = {
            "dry_run": dry_run,
            "interrupted": summary.interrupted,
            "counts": summary.counts(),
            "left_in_dlq": summary.left,
            "by_target": summary.by_target,
            "snapshot": snapshot,
            "journal": journal_file,
            "message_ids": summary.would_replay if dry_run else summary.replayed,
        }
        if not dry_run:
            append_audit(
                audit_log_path(audit_log),
                "replay",
                stack=target.stack,
                project=target.project,
                subscription=target.dead_letter_subscription,
                topic=target.topic,
                filter=selection.describe(),
                broadcast=broadcast,
                rate=rate,
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
    emit(result, as_json, _print_replay)
    if summary.interrupted:
        typer.echo("interrupted: the counts above are what was done (recorded in the audit "
                   "log); run the same command again to continue", err=True)  # fmt: skip
        raise typer.Exit(130)
    if summary.failed:
        raise typer.Exit(int(Exit.ERROR))


def _undo_points(
    ctx: Context, operation: str, dry_run: bool, no_snapshot: bool
) -> tuple[str | None, Any]:
    """The undo journal (always, unless a dry run) and, where Pub/Sub allows one, a snapshot.
    A refused snapshot (too old a backlog, no permission) is a warning: the journal remains."""
    if dry_run:
        return None, None
    from google.api_core import exceptions as gexc

    from cli.dlq.journal import Journal, new_journal_path
    from cli.dlq.snapshot import prune_snapshots, take_snapshot, undo_command

    target = ctx.target
    journal = Journal(new_journal_path(target.dead_letter_subscription, operation))
    typer.echo(
        f"undo journal: {journal.path} (to undo: eventsctl dlq restore --stack {target.stack} "
        f"--journal {journal.path})",
        err=True,
    )
    if no_snapshot:
        return None, journal
    try:
        snapshot = take_snapshot(ctx.subscriber, target, operation)
    except gexc.GoogleAPICallError as err:
        reason = str(getattr(err, "message", err)).strip().splitlines()[0][:200]
        _warn(f"no snapshot ({reason}); the undo journal above is the undo point")
        return None, journal
    typer.echo(f"snapshot taken; to undo: {undo_command(target, snapshot)}", err=True)
    try:
        pruned = prune_snapshots(ctx.subscriber, target)
    except gexc.GoogleAPICallError as err:  # housekeeping only: never stops the operation
        _warn(f"could not delete older eventsctl snapshots: {err}")
    else:
        if pruned:
            typer.echo(f"deleted {len(pruned)} older eventsctl snapshot(s)", err=True)
    return snapshot, journal


def _close_journal(journal: Any) -> str | None:
    """Close it; an empty journal (nothing was acknowledged) is removed."""
    if journal is None:
        return None
    journal.close()
    if journal.count == 0:
        journal.path.unlink(missing_ok=True)
        return None
    return str(journal.path)


def _warn_left(summary: Any, max_replays: int) -> None:
    """One line per reason letters were left in the DLQ, not one per letter."""
    if summary.poison:
        _warn(
            f"{len(summary.poison)} dead letters were replayed {max_replays} times already and "
            f"were left in the DLQ: inspect them (eventsctl dlq inspect --attr "
            f"replay_count={max_replays}) before raising --max-replays"
        )
    if summary.unroutable:
        _warn(
            f"{len(summary.unroutable)} dead letters have no source subscription or one this "
            "stack does not have; their copies would reach no subscription, so they were left "
            "in the DLQ: send them with --to SUBSCRIPTION or --broadcast"
        )


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


def _replay_file(
    ctx: Context,
    path: Path,
    broadcast: bool,
    rate: float | None,
    max_replays: int,
    dry_run: bool,
    yes: bool,
    audit_log: str | None,
    as_json: bool,
) -> None:
    from cli.dlq.audit import append_audit, audit_log_path
    from cli.dlq.peek import read_export
    from cli.dlq.replay import replay_records

    if not path.is_file():
        raise UserError(f"--from-file {path}: no such file")
    try:
        records = read_export(path)
    except ValueError as err:
        raise UserError(str(err)) from None
    if not broadcast:
        for record in records:
            ctx.target.check_source(record.get("source_subscription") or "(none)")
    if dry_run:
        emit(
            {"dry_run": True, "would_publish": len(records)},
            as_json,
            lambda d: typer.echo(f"dry run: would publish {d['would_publish']} records"),
        )
        return
    _confirm(yes, f"Publish {len(records)} records from {path} to {ctx.target.topic}?")
    ctx.preflight()
    with ctx.errors(f"topic {ctx.target.topic!r}"):
        summary = replay_records(ctx.publisher, ctx.target, records, broadcast, rate, max_replays)
    append_audit(
        audit_log_path(audit_log),
        "replay-from-file",
        stack=ctx.target.stack,
        project=ctx.target.project,
        topic=ctx.target.topic,
        file=str(path),
        counts={k: len(v) for k, v in vars(summary).items()},
        message_ids=summary.published,
    )
    result = {"published": len(summary.published), "skipped_poison": len(summary.poison),
              "failed": len(summary.failed), "file": str(path)}  # fmt: skip

    def human(d: dict[str, Any]) -> None:
        typer.echo(f"published {d['published']} records (skipped {d['skipped_poison']}, "
                   f"failed {d['failed']})")  # fmt: skip
        typer.echo(
            f"the originals are still in the DLQ: remove them with "
            f"`eventsctl dlq purge --stack {ctx.target.stack} --exported {path}`",
            err=True,
        )

    emit(result, as_json, human)
    if summary.failed:
        raise typer.Exit(int(Exit.ERROR))


# --- purge / restore ----------------------------------------------------------------------------


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
    from cli.dlq.audit import append_audit, audit_log_path
    from cli.dlq.peek import read_export
    from cli.dlq.replay import purge
    from cli.dlq.selection import parse_selection

    with user_errors():
        limit = _limit(limit)
        ctx = _context(stack, stacks_dir, project, None, dlq_subscription)
        target = ctx.target
        selection = parse_selection(target, source, attr, older_than, newer_than)
        exported_ids = None
        if exported is not None:
            if not exported.is_file():
                raise UserError(f"--exported {exported}: no such file")
            try:
                exported_ids = {r["message_id"] for r in read_export(exported)}
            except ValueError as err:
                raise UserError(str(err)) from None
        elif not yes and not dry_run:
            raise UserError(
                "purge removes dead letters for good: export them first "
                f"(eventsctl dlq export --stack {stack} --out FILE, then purge --exported FILE) "
                "or pass --yes"
            )
        ctx.preflight()
        if exported_ids is not None and not dry_run:
            _confirm(yes, f"Remove the {len(exported_ids)} exported dead letters from "
                          f"{target.dead_letter_subscription}?")  # fmt: skip
        snapshot, journal = _undo_points(ctx, "purge", dry_run, no_snapshot)
        with ctx.errors():
            summary = purge(
                ctx.subscriber,
                target,
                selection,
                exported_ids,
                limit,
                dry_run,
                ctx.pull_timeout,
                journal,
            )
        journal_file = _close_journal(journal)
        if not dry_run:
            append_audit(
                audit_log_path(audit_log),
                "purge",
                stack=target.stack,
                project=target.project,
                subscription=target.dead_letter_subscription,
                filter=selection.describe(),
                exported_file=str(exported) if exported else None,
                counts={"purged": len(summary.purged)},
                snapshot=snapshot,
                journal=journal_file,
                message_ids=summary.purged,
            )
    result = {
        "dry_run": dry_run,
        "purged": len(summary.purged),
        "not_exported": summary.not_exported,
        "not_selected": summary.not_selected,
        "snapshot": snapshot,
        "journal": journal_file,
    }
    emit(
        result,
        as_json,
        lambda d: typer.echo(
            f"{'would remove' if d['dry_run'] else 'removed'} {d['purged']} dead letters "
            f"(kept: {d['not_exported']} not in the export, {d['not_selected']} not selected)"
        ),
    )


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
    from cli.dlq.audit import append_audit, audit_log_path
    from cli.dlq.snapshot import restore

    with user_errors():
        if (snapshot is None) == (journal_file is None):
            raise UserError("give one of --snapshot ID or --journal FILE")
        ctx = _context(stack, stacks_dir, project, None, dlq_subscription)
        ctx.preflight()
        if journal_file is not None:
            _restore_journal(ctx, journal_file, yes, audit_log)
            return
        _confirm(yes, f"Seek {ctx.target.dead_letter_subscription} back to {snapshot}?")
        with ctx.errors(f"snapshot {snapshot!r}"):
            name = restore(ctx.subscriber, ctx.target, snapshot)
        append_audit(audit_log_path(audit_log), "restore", stack=ctx.target.stack,
                     project=ctx.target.project, snapshot=name)  # fmt: skip
    typer.echo(f"{ctx.target.dead_letter_subscription} restored to {name}")


def _restore_journal(ctx: Context, path: Path, yes: bool, audit_log: str | None) -> None:
    from cli.dlq.audit import append_audit, audit_log_path
    from cli.dlq.journal import restore_journal
    from cli.dlq.peek import read_export

    try:
        records = read_export(path)
    except (OSError, ValueError) as err:
        raise UserError(f"--journal {path}: {err}") from None
    target = ctx.target
    dlq_topic = f"projects/{target.project}/topics/{ctx.topology.dead_letter.topic}"
    _confirm(yes, f"Publish the {len(records)} dead letters of {path.name} back to {dlq_topic}?")
    with ctx.errors(f"topic {dlq_topic!r}"):
        restored = restore_journal(ctx.publisher, dlq_topic, records)
    append_audit(audit_log_path(audit_log), "restore", stack=target.stack,
                 project=target.project, journal=str(path), message_ids=restored)  # fmt: skip
    typer.echo(f"{len(restored)} of {len(records)} dead letters published back to {dlq_topic}")
    if len(restored) < len(records):
        raise UserError(f"{len(records) - len(restored)} could not be published; run it again")


# --- doctor -------------------------------------------------------------------------------------


@app.command("doctor")
def doctor_command(
    stack: str = options.STACK,
    stacks_dir: str = options.STACKS_DIR,
    project: str = options.PROJECT,
    as_json: bool = options.JSON,
) -> None:
    """Check the live Pub/Sub setup against the stack file.

    Names each silent failure: missing dead-letter policy, wrong attempts or backoff, a
    dead-letter topic without subscription, subscriptions that will expire, short retention,
    wrong replay filters and (on real GCP) missing service-agent grants. Exit 1 if any.
    """
    from cli.dlq.doctor import diagnose
    from cli.local.stack import as_provisioned_locally

    with user_errors():
        ctx = _context(stack, stacks_dir, project, None, None)
        expected, local_note = as_provisioned_locally(stack, ctx.topology, ctx.target.emulator)
        with ctx.errors("the stack's topics and subscriptions"):
            findings = diagnose(
                ctx.publisher,
                ctx.subscriber,
                ctx.target,
                expected,
                check_iam=ctx.target.emulator is None,
            )
    rows = [vars(f) for f in findings]
    problems = [f for f in findings if f.ok is False]

    def human(data: list[dict[str, Any]]) -> None:
        table(
            f"dlq doctor ({stack})",
            ["", "check", "resource", "detail"],
            [[_mark(r["ok"]), r["check"], r["resource"].rsplit("/", 1)[-1], r["detail"]]
             for r in data],
        )  # fmt: skip
        if ctx.target.emulator:
            typer.echo("IAM checks skipped: the emulator has no IAM", err=True)
        if local_note:
            typer.echo(local_note, err=True)
        typer.echo(f"{len(problems)} problem(s) found", err=True)

    emit(rows, as_json, human)
    raise typer.Exit(int(Exit.FOUND if problems else Exit.OK))


# --- shared helpers -----------------------------------------------------------------------------


def _mark(ok: bool | None) -> str:
    return "-" if ok is None else "ok" if ok else "FAIL"


def _backlog(ctx: Context, walk: bool) -> tuple[int, bool] | None:
    """(dead letters the subscription holds, whether that is Cloud Monitoring's estimate):
    Monitoring's figure where there is one (minutes old), else — only if `walk` — counted from
    Pub/Sub by walking the subscription; None when neither."""
    from cli.dlq.clients import metrics_client
    from cli.dlq.status import UNDELIVERED, dlq_status, latest_metric

    target = ctx.target
    with ctx.errors():
        metrics = metrics_client()
        if metrics is not None:
            value = latest_metric(
                metrics, target.project, target.dead_letter_subscription, UNDELIVERED
            )
            if value is not None:
                return int(value), True
        if not walk:
            return None
        row = dlq_status(ctx.subscriber, target, None, pull_timeout=ctx.pull_timeout)
    return int(row.get("undelivered") or 0), False


def _confirm(yes: bool, question: str) -> None:
    if yes:
        return
    try:
        confirmed = typer.confirm(question, default=False, err=True)
    except typer.Abort:
        raise UserError(
            "no confirmation (stdin closed): pass --yes to go ahead without a prompt"
        ) from None
    if not confirmed:
        raise UserError("not confirmed: nothing changed")


class _progress:
    """A rich progress bar on stderr (count, rate, ETA when the total is known)."""

    def __init__(self, label: str, total: int | None) -> None:
        self.label = label
        self.total = total

    def __enter__(self) -> Any:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        class Rate(TaskProgressColumn):
            def render(self, task: Any) -> Any:
                from rich.text import Text

                speed = task.finished_speed or task.speed
                return Text(f"{speed:,.0f} msg/s" if speed else "- msg/s")

        self.progress = Progress(
            TextColumn(self.label),
            BarColumn(),
            MofNCompleteColumn(),
            Rate(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(file=sys.stderr),
            transient=False,
        )
        self.progress.__enter__()
        self.task = self.progress.add_task(self.label, total=self.total)
        return lambda n: self.progress.advance(self.task, n)

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)
