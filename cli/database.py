"""The `--database-url` option the outbox and consumer commands share; connecting is the
library's (`events_infra.db.connect`), whose errors the CLI prints as one line, exit 2.

A password never has to be on a command line (where `ps` and shell history show it): leave it
out of the URL and libpq takes it from `PGPASSWORD`, `~/.pgpass` or `PGPASSFILE`, or pass the
URL in `DATABASE_URL`; Cloud SQL logins use IAM (`--cloud-sql-instance --iam-user`). A URL with
a password given as a flag is still accepted, with a warning saying so.
"""

from __future__ import annotations

import os
import re

import typer

from events_infra.db.connect import connect

__all__ = ["DATABASE_URL", "connect", "has_password"]

_URL_PASSWORD = re.compile(r"^[a-z0-9+.-]+://[^/@:]*:[^/@]+@", re.IGNORECASE)
_KEYWORD_PASSWORD = re.compile(r"(^|\s)password\s*=", re.IGNORECASE)


def has_password(url: str) -> bool:
    """Whether a libpq URL or key=value string carries a password."""
    return bool(_URL_PASSWORD.match(url) or _KEYWORD_PASSWORD.search(url))


def _warn_on_command_line(value: str | None) -> str | None:
    """Warn when the URL came from the flag (not from DATABASE_URL) and holds a password. (The
    parameter source is not recorded yet when click runs a callback; the environment is.)"""
    if value and value != os.environ.get("DATABASE_URL") and has_password(value):
        typer.echo(
            "warning: --database-url holds a password, which other users see in `ps` and your "
            "shell keeps in its history: leave it out (libpq reads PGPASSWORD, ~/.pgpass or "
            "PGPASSFILE) or set DATABASE_URL instead",
            err=True,
        )
    return value


DATABASE_URL = typer.Option(
    None,
    "--database-url",
    envvar="DATABASE_URL",
    help="PostgreSQL URL of the outbox database (postgresql://user@host:5432/db): keep the "
    "password out of it (PGPASSWORD, ~/.pgpass, or the whole URL in DATABASE_URL).",
    show_default=False,
    callback=_warn_on_command_line,
)
