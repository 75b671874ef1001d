"""The service's database transaction a handler runs in, for sync and async handlers alike.

The batch logic in `consumer.batch` is written once against this small interface; the async
variant runs each step on a private event loop in the worker's thread, so an `async def`
handler gets a psycopg `AsyncConnection` and can await its own queries.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from events_infra.consumer.event import ReceivedEvent
from events_infra.consumer.processed import RECORD_SQL

CONNECT_TIMEOUT_S = 10


class SyncTransactions:
    """One psycopg connection; each batch is one transaction on it."""

    def __init__(self, database_url: str, consumer: str, handler: Callable[..., Any]) -> None:
        import psycopg

        self._conn = psycopg.connect(database_url, connect_timeout=CONNECT_TIMEOUT_S)
        self._consumer = consumer
        self._handler = handler

    def record(self, event_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        """Record `event_ids` as processed (opens the transaction); return those that are new."""
        rows = self._conn.execute(RECORD_SQL, (self._consumer, event_ids)).fetchall()
        return {row[0] for row in rows}

    def handle(self, event: ReceivedEvent) -> None:
        self._handler(event, self._conn)

    def commit(self) -> None:
        self._conn.commit()

    def rollback(self) -> None:
        self._conn.rollback()

    @property
    def broken(self) -> bool:
        return self._conn.closed or self._conn.broken

    def close(self) -> None:
        self._conn.close()


class AsyncTransactions:
    """One psycopg AsyncConnection driven by a private event loop in the worker's thread."""

    def __init__(self, database_url: str, consumer: str, handler: Callable[..., Any]) -> None:
        import psycopg

        self._loop = asyncio.new_event_loop()
        self._conn = self._loop.run_until_complete(
            psycopg.AsyncConnection.connect(database_url, connect_timeout=CONNECT_TIMEOUT_S)
        )
        self._consumer = consumer
        self._handler = handler

    def record(self, event_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        async def run() -> set[uuid.UUID]:
            cur = await self._conn.execute(RECORD_SQL, (self._consumer, event_ids))
            return {row[0] for row in await cur.fetchall()}

        return self._loop.run_until_complete(run())

    def handle(self, event: ReceivedEvent) -> None:
        self._loop.run_until_complete(self._handler(event, self._conn))

    def commit(self) -> None:
        self._loop.run_until_complete(self._conn.commit())

    def rollback(self) -> None:
        self._loop.run_until_complete(self._conn.rollback())

    @property
    def broken(self) -> bool:
        return self._conn.closed or self._conn.broken

    def close(self) -> None:
        try:
            self._loop.run_until_complete(self._conn.close())
        finally:
            self._loop.close()
