"""The async write helpers: for services on asyncio (FastAPI and friends).

    async with session.begin():                 # SQLAlchemy AsyncSession (asyncpg or psycopg)
        session.add(Trade(...))
        await enqueue_async(session, Event("trade.created", aggregate_type="trade", ...))

Accepts a SQLAlchemy `AsyncSession` / `AsyncConnection`, a bare asyncpg connection inside a
transaction, or a psycopg `AsyncConnection`. Same validation and the same single INSERT as the
sync `enqueue` (see `outbox.enqueue`), awaited instead of blocking the event loop.
"""

from __future__ import annotations

import uuid
from typing import Any

from events_infra.outbox.connection_kinds import (
    is_asyncpg,
    is_sqlalchemy,
    refuse_autocommit,
    sqlalchemy_autocommit,
)
from events_infra.outbox.event_validation import Event, validated_rows
from events_infra.outbox.insert_statement import statements


async def enqueue_async(conn: Any, event: Event) -> uuid.UUID:
    """Insert `event` in `conn`'s open transaction; return its event id (see `enqueue`)."""
    return (await enqueue_many_async(conn, [event]))[0]


async def enqueue_many_async(conn: Any, events: list[Event]) -> list[uuid.UUID]:
    """Enqueue several events in `conn`'s open transaction; ids in the order given."""
    ids, rows = validated_rows(events)
    if is_sqlalchemy(conn):
        from sqlalchemy import text

        refuse_autocommit(sqlalchemy_autocommit(conn))
        for sql, params in statements(rows, "named"):
            await conn.execute(text(sql), params)
    elif is_asyncpg(conn):
        # asyncpg runs each statement in its own transaction unless one is open.
        refuse_autocommit(not conn.is_in_transaction())
        for sql, params in statements(rows, "numeric"):
            await conn.execute(sql, *params)
    else:
        refuse_autocommit(bool(getattr(conn, "autocommit", False)))
        async with conn.cursor() as cur:
            for sql, params in statements(rows, "format"):
                await cur.execute(sql, params)
    return ids
