"""`eventsctl dlq inspect` and `export`: read dead letters without consuming them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from events_infra.cli import options
from events_infra.cli.dlq_commands.common import (
    ATTR,
    NEWER,
    OLDER,
    SOURCE,
    app,
    context,
    limit_flag,
)
from events_infra.cli.errors import UserError, user_errors
from events_infra.cli.render import emit, printable
from events_infra.pubsub.attributes import DEAD_LETTER_PREFIX


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
    from events_infra.dlq.peek import inspect_letters
    from events_infra.dlq.selection import parse_selection

    with user_errors():
        ctx = context(stack, stacks_dir, project, None, dlq_subscription)
        selection = parse_selection(ctx.target, source, attr, older_than, newer_than)
        ctx.preflight()
        with ctx.errors():
            letters = inspect_letters(
                ctx.subscriber,
                ctx.target.subscription_path,
                selection,
                limit_flag(limit),
                pull_timeout=ctx.pull_timeout,
            )
    records = [letter.to_record() for letter in letters]
    emit(records, as_json, _print_letters)


def _print_letters(records: list[dict[str, Any]]) -> None:
    if not records:
        typer.echo("no dead letters match", err=True)
    for record in records:
        typer.echo(
            printable(
                f"── {record['message_id']}  from {record['source_subscription']}  delivered "
                f"{record['delivery_count']}x  published {record['original_publish_time']}  "
                f"dead-lettered {record['dead_lettered_at']}  replays {record['replay_count']}"
            )
        )
        shown = {
            k: v for k, v in record["attributes"].items() if not k.startswith(DEAD_LETTER_PREFIX)
        }
        if shown:
            typer.echo(f"   attributes: {json.dumps(shown, sort_keys=True)}")
        if record["ordering_key"]:
            typer.echo(f"   ordering key: {printable(record['ordering_key'])}")
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
    from events_infra.dlq.operations import backlog_of
    from events_infra.dlq.peek import Coverage, export_letters
    from events_infra.dlq.selection import parse_selection

    with user_errors():
        ctx = context(stack, stacks_dir, project, None, dlq_subscription)
        selection = parse_selection(ctx.target, source, attr, older_than, newer_than)
        if not out.parent.is_dir():
            raise UserError(f"--out {out}: folder {out.parent} does not exist")
        ctx.preflight()
        # an export is a backup: read the whole backlog, as far as its count says (Monitoring)
        backlog = backlog_of(ctx, walk=False) if limit is None else None
        coverage = Coverage(expected=backlog[0] if backlog else None)
        with ctx.errors():
            ids = export_letters(
                ctx.subscriber,
                ctx.target.subscription_path,
                selection,
                limit_flag(limit),
                out,
                pull_timeout=ctx.pull_timeout,
                coverage=coverage,
            )
    data = {
        "exported": len(ids),
        "file": str(out),
        "backlog": coverage.expected,
        "possibly_remaining": coverage.possibly_remaining,
    }

    def human(d: dict[str, Any]) -> None:
        typer.echo(f"exported {d['exported']} dead letters to {d['file']}")
        if d["possibly_remaining"]:
            typer.echo(
                f"warning: Cloud Monitoring counts {d['backlog']} in the DLQ and Pub/Sub brought "
                f"nothing new for a while: up to {d['possibly_remaining']} may not be in the "
                "file; run export again before relying on it",
                err=True,
            )

    emit(data, as_json, human)
