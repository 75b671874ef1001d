"""Which kind of database handle a writer was given, without importing any driver.

Services hand us whatever they already use: psycopg (sync or async), asyncpg, or SQLAlchemy's
sync or async `Session` / `Connection`. Detection is by the object's module, so importing the
outbox package never pulls in SQLAlchemy or asyncpg.
"""

from __future__ import annotations

from typing import Any

from events_infra.outbox.event_validation import InvalidEventError


def _module(conn: Any) -> str:
    return type(conn).__module__ or ""


def is_sqlalchemy(conn: Any) -> bool:
    return _module(conn).startswith("sqlalchemy.")


def is_asyncpg(conn: Any) -> bool:
    return _module(conn).startswith("asyncpg.")


def refuse_autocommit(autocommit: bool) -> None:
    """An autocommit handle would commit the event without the business change: refuse it."""
    if autocommit:
        raise InvalidEventError(
            "enqueue needs an open transaction: the connection is in autocommit mode, so the "
            "event would commit without the business change; use conn.transaction() or "
            "autocommit=False"
        )


def sqlalchemy_autocommit(conn: Any) -> bool:
    """Whether a SQLAlchemy Session/Connection (sync or async) runs in AUTOCOMMIT isolation.

    Reads execution options only (engine options are inherited by connections), so it costs no
    round trip. A Session is asked through the options of its bind.
    """
    holder = conn
    if hasattr(conn, "get_bind") and not hasattr(conn, "get_execution_options"):
        holder = conn.get_bind()
    options = getattr(holder, "get_execution_options", lambda: {})()
    level = options.get("isolation_level") or getattr(
        getattr(holder, "dialect", None), "_on_connect_isolation_level", None
    )
    return str(level).upper() == "AUTOCOMMIT"
