"""The `eventsctl` entry point: the root Typer app and its command groups."""

from __future__ import annotations

import typer

from cli import __version__, dlq_cmd, local_cmd, outbox_cmd, preview_cmd, topology_cmd

app = typer.Typer(
    name="eventsctl",
    help="Operate the events-infra event backbone: topology, dead letters and the outbox.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(topology_cmd.app, name="topology")
app.add_typer(outbox_cmd.app, name="outbox")
app.add_typer(dlq_cmd.app, name="dlq")
app.add_typer(local_cmd.app, name="local")
app.add_typer(preview_cmd.app, name="preview")
app.command("demo")(local_cmd.demo_command)


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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
