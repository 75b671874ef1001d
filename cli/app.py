"""The `eventsctl` entry point: the root Typer app and its command groups."""

from __future__ import annotations

import typer

from events_infra import __version__
from events_infra.cli import (
    adopt_cmd,
    consumer_cmd,
    dlq_commands,
    local_cmd,
    outbox_cmd,
    preview_cmd,
    subscription_cmd,
    topology_cmd,
)

app = typer.Typer(
    name="eventsctl",
    help="Operate the events-infra event backbone: topology, dead letters and the outbox.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(topology_cmd.app, name="topology")
app.add_typer(adopt_cmd.app, name="adopt")
app.add_typer(outbox_cmd.app, name="outbox")
app.add_typer(consumer_cmd.app, name="consumer")
app.add_typer(dlq_commands.app, name="dlq")
app.add_typer(subscription_cmd.app, name="subscription")
app.add_typer(local_cmd.app, name="local")
app.add_typer(preview_cmd.app, name="preview")
app.command("demo")(local_cmd.demo_command)


def reflow(text: str | None) -> str | None:
    """A docstring as help: lines within a paragraph joined, so the terminal wraps them at its
    width (Typer keeps a docstring's line breaks, which leaves ragged lines at 80 columns)."""
    if not text:
        return text
    import inspect

    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


def _reflow_help(group: typer.Typer) -> None:
    for command in group.registered_commands:
        command.help = reflow(
            command.help or (command.callback.__doc__ if command.callback else None)
        )
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _reflow_help(sub.typer_instance)


_reflow_help(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"eventsctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Operate the events-infra event backbone: topology, dead letters and the outbox."""


if __name__ == "__main__":
    app()
