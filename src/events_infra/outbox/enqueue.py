"""The write helpers services call: events into the outbox, inside the caller's transaction.

    with psycopg.connect(url) as conn:          # a transaction is open until the block ends
        conn.execute("UPDATE trades SET ...")
        enqueue(conn, Event("trade.created", aggregate_type="trade", aggregate_id=trade_id,
                            payload={"trade_id": str(trade_id), ...}))
    # committed together: the event exists if and only if the trade change does

`enqueue` takes a psycopg connection or a SQLAlchemy `Session` / `Connection`; async services use
`outbox.enqueue_async`. Every writer validates with `outbox.event_validation` and sends the one
INSERT of `outbox.insert_statement`; the table's triggers (migration 0003) lock the key so `seq`
follows commit order, and NOTIFY relays when the transaction commits.
"""

from __future__ import annotations

import uuid
from typing import Any

from events_infra.outbox.connection_kinds import (
    is_sqlalchemy,
    refuse_autocommit,
    sqlalchemy_autocommit,
)
from events_infra.outbox.event_validation import Event, InvalidEventError, validated_rows
from events_infra.outbox.insert_statement import statements

NOTIFY_CHANNEL = "event_outbox"
"""Relays LISTEN here; the insert trigger notifies once per statement and PostgreSQL folds
identical notifications of one transaction into one."""

__all__ = ["NOTIFY_CHANNEL", "Event", "InvalidEventError", "enqueue", "enqueue_many"]


def enqueue(conn: Any, event: Event) -> uuid.UUID:
    """Insert `event` in `conn`'s open transaction; return its event id.

    Two transactions writing the same aggregate get `seq` in commit order (the second waits for
    the first's key lock). Like a row lock, this can deadlock when two transactions lock the same
    keys in opposite orders: enqueue several events at once with `enqueue_many`, which writes them
    sorted by key.
    """
    return enqueue_many(conn, [event])[0]


def enqueue_many(conn: Any, events: list[Event]) -> list[uuid.UUID]:
    """Enqueue several events in the caller's open transaction; return their ids in the order
    given. All are validated before anything is written; one key keeps the order given."""
    ids, rows = validated_rows(events)
    if is_sqlalchemy(conn):
        _write_sqlalchemy(conn, rows)
    else:
        refuse_autocommit(bool(getattr(conn, "autocommit", False)))
        with conn.cursor() as cur:
            for sql, params in statements(rows, "format"):
                cur.execute(sql, params)
    return ids


def _write_sqlalchemy(conn: Any, rows: list[tuple[Any, ...]]) -> None:
    """A sync `Session` or `Connection`: executed through SQLAlchemy, inside its transaction."""
    from sqlalchemy import text

    refuse_autocommit(sqlalchemy_autocommit(conn))
    for sql, params in statements(rows, "named"):
        conn.execute(text(sql), params)
