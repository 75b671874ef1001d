"""The relay's two database connections: one for its short claim and settle transactions, one
that LISTENs for new events. Opened with backoff until they are (or the relay is told to stop),
because on Cloud Run the database may take a minute to be reachable; a broken connection mid-
statement is `DatabaseLost`, which the relay's loop answers by reopening and carrying on."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

from events_infra.errors import first_line
from events_infra.outbox.enqueue import NOTIFY_CHANNEL

log = logging.getLogger("events_infra.outbox.relay")
"""The relay's own logger: one logger for every line of the relay process (`relay_metrics` too)."""


class DatabaseLost(Exception):
    """The database connection broke mid-batch; the loop reconnects and carries on."""


class RelayConnections:
    def __init__(self, database_url: str, stopping: threading.Event) -> None:
        self.database_url = database_url
        self.stopping = stopping
        self.work: Any = None
        self.listen: Any = None

    def open(self) -> bool:
        """(Re)open both connections, retrying with backoff until stopped; False if asked to
        stop before the database answered."""
        import psycopg
        from tenacity import (
            Retrying,
            retry_if_exception_type,
            stop_when_event_set,
            wait_random_exponential,
        )

        self.close()

        def unreachable(state: Any) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.warning(
                json.dumps(
                    {
                        "event": "database_unreachable",
                        "attempt": state.attempt_number,
                        "error": first_line(error) if error else "",
                        "retry_in_s": round(state.upcoming_sleep, 1),
                    }
                )
            )

        try:
            for attempt in Retrying(
                retry=retry_if_exception_type(psycopg.OperationalError),
                wait=wait_random_exponential(multiplier=0.2, max=10),
                stop=stop_when_event_set(self.stopping),
                before_sleep=unreachable,
                reraise=True,
            ):
                with attempt:
                    self.work = psycopg.connect(self.database_url, connect_timeout=5)
                    self.listen = psycopg.connect(
                        self.database_url, autocommit=True, connect_timeout=5
                    )
                    self.listen.execute(f"LISTEN {NOTIFY_CHANNEL}")
        except psycopg.OperationalError:
            if not self.stopping.is_set():
                raise
            self.close()  # asked to stop while waiting for the database: nothing to settle
            return False
        return self.work is not None

    def close(self) -> None:
        for conn in (self.work, self.listen):
            if conn is not None:
                with contextlib.suppress(Exception):  # closing a dead connection
                    conn.close()
        self.work = self.listen = None

    @contextlib.contextmanager
    def cursor(self, row_factory: Any = None) -> Iterator[Any]:
        """A cursor in one transaction on the work connection; a broken connection on the way
        is `DatabaseLost`."""
        import psycopg

        try:
            with self.work.transaction(), self.work.cursor(row_factory=row_factory) as cur:
                yield cur
        except psycopg.OperationalError as err:
            raise DatabaseLost(err) from err

    def execute(self, statements: list[tuple[str, Any]], returning: bool = False) -> list[Any]:
        """Run `statements` in one transaction; the last one's rows if `returning`."""
        with self.cursor() as cur:
            for sql, params in statements:
                cur.execute(sql, params)
            return cur.fetchall() if returning else []

    def notified(self, seconds: float) -> bool:
        """Wait up to `seconds` for a NOTIFY (or until stopping); True if one came. Without a
        LISTEN connection (it broke) it only sleeps: the next reconnect listens again."""
        if self.listen is None:
            self.stopping.wait(seconds)
            return False
        try:
            for _ in self.listen.notifies(timeout=seconds, stop_after=1):
                return True
        except Exception:
            self.listen = None
        return False
