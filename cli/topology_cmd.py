"""`eventsctl topology`: what a stack deploys, validated exactly as `pulumi preview` does."""

from __future__ import annotations

from typing import Any

import typer

from events_infra.cli import options
from events_infra.cli.errors import user_errors
from events_infra.cli.render import emit, table

app = typer.Typer(
    help="Validate a stack file, show what it declares, and class its changes before Pulumi runs."
)


def describe(stack: str, stacks_dir: str | None) -> dict[str, Any]:
    """The resolved topology of `stack` as plain data (defaults applied, GCP durations)."""
    from events_infra.stack_config.stack_files import load_stack
    from events_infra.stack_config.stack_files import stacks_dir as find_dir

    config = load_stack(stack, find_dir(stacks_dir))
    return {
        "stack": stack,
        "project": config.project,
        "production": config.production,
        "topic": config.topic.name,
        "dead_letter_topic": config.dead_letter.topic,
        "dead_letter_subscription": config.dead_letter.subscription,
        "dead_letter_retention": config.dead_letter.message_retention_gcp,
        "subscriptions": [
            {
                "name": sub.name,
                "max_delivery_attempts": sub.max_delivery_attempts,
                "min_backoff": sub.min_backoff_gcp,
                "max_backoff": sub.max_backoff_gcp,
                "ack_deadline_seconds": sub.ack_deadline,
                "message_ordering": sub.enable_message_ordering,
                "exactly_once": sub.enable_exactly_once_delivery,
                "push_endpoint": sub.push_endpoint,
                "filter": sub.delivery_filter,
            }
            for sub in config.subscriptions
        ],
    }


def _print(data: dict[str, Any]) -> None:
    protected = " (production: protected)" if data["production"] else ""
    typer.echo(f"stack {data['stack']}: project {data['project']}{protected}")
    typer.echo(f"topic {data['topic']} -> dead letters to {data['dead_letter_topic']}")
    typer.echo(
        f"dead-letter subscription {data['dead_letter_subscription']} "
        f"(retention {data['dead_letter_retention']}, never expires)"
    )
    table(
        "subscriptions",
        ["name", "attempts", "backoff", "ack deadline", "ordering", "delivery"],
        [
            [
                s["name"],
                s["max_delivery_attempts"],
                f"{s['min_backoff']}–{s['max_backoff']}",
                f"{s['ack_deadline_seconds']}s",
                "yes" if s["message_ordering"] else "no",
                f"push {s['push_endpoint']}" if s["push_endpoint"] else "pull",
            ]
            for s in data["subscriptions"]
        ],
    )


@app.command("show")
def show(
    stack: str = options.STACK,
    stacks_dir: str = options.STACKS_DIR,
    as_json: bool = options.JSON,
) -> None:
    """Validate the stack file and show what it declares; exit 2 with one line per problem."""
    with user_errors():
        data = describe(stack, stacks_dir)
    emit(data, as_json, _print)


@app.command("diff")
def diff_command(
    ref: str = typer.Option(
        ..., "--from", help="The git revision to compare with (e.g. origin/main, a commit)."
    ),
    stack: str = options.STACK,
    stacks_dir: str = options.STACKS_DIR,
    markdown: str = typer.Option(
        None,
        "--markdown",
        help="Append the report to this file as markdown (the PR comment).",
        show_default=False,
    ),
    as_json: bool = options.JSON,
) -> None:
    """Class every change to the stack file since REF before Pulumi runs: in place,
    restart/downtime, data loss, replacement (with the way through), create.

    Exit 1 when a change loses data or replaces a resource holding data; 0 otherwise.
    """
    from events_infra.cli.errors import Exit
    from events_infra.stack_config.topology_diff import diff_stack

    with user_errors():
        report = diff_stack(stack, stacks_dir, ref)
    emit(report, as_json, _print_diff)
    if markdown:
        with open(markdown, "a", encoding="utf-8") as out:
            out.write(_markdown(report))
    raise typer.Exit(int(Exit.FOUND if report["blocking"] else Exit.OK))


def _described(change: dict[str, Any]) -> str:
    if not change["setting"]:
        return "created" if change["change"] == "create" else "removed"
    return f"{change['setting']}: {change['old']!r} -> {change['new']!r}"


def _print_diff(report: dict[str, Any]) -> None:
    rows = [
        [f"{c['kind']} {c['name']}", _described(c), c["change"], c["why"]]
        for c in report["changes"]
    ]
    table(f"stack {report['stack']} since {report['from']}", ["resource", "change", "class", "why"],
          rows)  # fmt: skip
    if not rows:
        typer.echo("no change to what the stack declares", err=True)


def _markdown(report: dict[str, Any]) -> str:
    lines = [f"### Stack `{report['stack']}`: changes since `{report['from']}`", ""]
    if not report["changes"]:
        return "\n".join([*lines, "No change to what the stack declares.", ""])
    lines += ["| resource | change | class | why |", "|---|---|---|---|"]
    for c in report["changes"]:
        flag = " **(blocks)**" if c["blocking"] else ""
        cells = [f"{c['kind']} `{c['name']}`", _described(c).replace("|", "\\|"),
                 c["change"] + flag, c["why"].replace("|", "\\|")]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join([*lines, ""])
