"""`eventsctl`: the on-call and operations CLI of events-infra (the `[ops]` extra).

Each command group lives in its own module; commands are thin (parse, call one library function,
render) and import heavy client libraries inside the command, so `eventsctl --help` stays fast.
`main` is the console entry point: in a base install (a service's, without Typer and Rich) it
says which extra to install instead of failing with an ImportError.
"""

from __future__ import annotations

import sys

from events_infra import __version__

__all__ = ["__version__", "main"]

CLI_DEPENDENCIES = ("typer", "rich", "click")


def main() -> None:
    """Run `eventsctl`, or explain in one line that the CLI needs the `[ops]` extra."""
    try:
        from events_infra.cli.app import app
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] not in CLI_DEPENDENCIES:
            raise
        print(
            f"error: eventsctl needs {err.name!r}, which the base install leaves out: "
            "pip install 'events-infra[ops]'",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    app()
