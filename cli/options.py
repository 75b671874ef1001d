"""Options shared by several command groups, defined once so their help text never drifts."""

from __future__ import annotations

import typer

STACK = typer.Option(
    "dev",
    "--stack",
    "-s",
    envvar="EVENTSCTL_STACK",
    help="Stack whose stacks/Pulumi.<stack>.yaml names the topics and subscriptions.",
)
STACKS_DIR = typer.Option(
    None,
    "--stacks-dir",
    envvar="EVENTS_INFRA_STACKS_DIR",
    help="Folder holding the Pulumi.<stack>.yaml files (default: the stackConfigDir of the "
    "Pulumi project holding the working directory, as pulumi finds it).",
)
JSON = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")
PROJECT = typer.Option(
    None,
    "--project",
    envvar="EVENTSCTL_PROJECT",
    help="GCP project (default: the stack's gcp:project).",
    show_default=False,
)
TOPIC = typer.Option(
    None, "--topic", help="Events topic name (default: the stack's).", show_default=False
)
DLQ_SUBSCRIPTION = typer.Option(
    None,
    "--dlq-subscription",
    help="Dead-letter subscription name (default: the stack's).",
    show_default=False,
)
