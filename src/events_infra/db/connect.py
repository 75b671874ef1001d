"""Opening a PostgreSQL connection with an error a person can act on, and naming a server in
messages without its credentials. Shared by the CLI, local mode and operators' scripts."""

from __future__ import annotations

from typing import Any

from events_infra.errors import EventsInfraError, first_line

CONNECT_TIMEOUT_S = 10


class DatabaseUnreachable(EventsInfraError):
    """No URL was given, or the server refused or did not answer; the message names the server
    (never the password) and what to check."""


def require_url(url: str | None) -> str:
    """`url`, or DatabaseUnreachable saying how to give one."""
    if not url:
        raise DatabaseUnreachable("no database given: pass --database-url or set DATABASE_URL")
    return url


def connect(url: str | None) -> Any:
    """A psycopg connection to `url`, or DatabaseUnreachable within CONNECT_TIMEOUT_S."""
    url = require_url(url)
    import psycopg

    try:
        return psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.Error as err:
        raise DatabaseUnreachable(
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
