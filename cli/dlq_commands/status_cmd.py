"""`eventsctl dlq status`: how many dead letters, how old, from where."""

from __future__ import annotations

import time
from typing import Any

import typer

from events_infra.cli import options
from events_infra.cli.dlq_commands.common import app, context
from events_infra.cli.errors import Exit, user_errors
from events_infra.cli.render import emit, table


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
    from events_infra.dlq.clients import metrics_client
    from events_infra.dlq.status import dlq_status

    shown = 0
    while True:
        with user_errors():
            ctx = context(stack, stacks_dir, project, None, dlq_subscription)
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
    from events_infra.stack_config.durations import human_duration

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
