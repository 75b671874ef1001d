"""Opening PostgreSQL connections for CLI commands, with errors a person can act on."""

from __future__ import annotations

from typing import Any

import typer

from cli.errors import UserError
from outbox.error_text import first_line

DATABASE_URL = typer.Option(
    None,
    "--database-url",
    envvar="DATABASE_URL",
    help="PostgreSQL URL of the outbox database (postgresql://user:pass@host:5432/db).",
    show_default=False,
)


def connect(url: str | None) -> Any:
    """A psycopg connection to `url`, or a UserError naming the server (never the password)."""
    if not url:
        raise UserError("no database given: pass --database-url or set DATABASE_URL")
    import psycopg

    try:
        return psycopg.connect(url, connect_timeout=10)
    except psycopg.Error as err:
        raise UserError(
            f"cannot connect to PostgreSQL at {describe(url)}: {first_line(err)}; "
            "check --database-url / DATABASE_URL and that the server is running"
        ) from None


def describe(url: str) -> str:
    """`host:port/dbname` of a URL or DSN, for messages: credentials are never shown."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(url)
    except Exception:
        return "the given URL"
    host = params.get("host") or "localhost"
    return f"{host}:{params.get('port') or 5432}/{params.get('dbname') or params.get('user', '')}"
