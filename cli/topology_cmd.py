"""`eventsctl topology`: what a stack deploys, validated exactly as `pulumi preview` does."""

from __future__ import annotations

from typing import Any

import typer

from events_infra.cli import options
from events_infra.cli.errors import user_errors
from events_infra.cli.render import emit, table

app = typer.Typer(help="Validate a stack file and show the topics and subscriptions it declares.")


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
