"""Helpers for the consumer library's tests: a service database with an `effects` table the
handlers write (no unique constraint, so a duplicate effect would show as a second row), a
consumer in a thread or a child process, and events published as the relay publishes them."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from events_infra.consumer import Consumer, ConsumerOptions, ReceivedEvent, migrate_processed_events

ROOT = Path(__file__).resolve().parents[2]


def prepare_service_db(url: str) -> None:
    with psycopg.connect(url) as conn:
        migrate_processed_events(conn)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS effects (event_id uuid NOT NULL, ordering_key text,"
            " n integer, attempt integer, replayed boolean,"
            " at timestamptz DEFAULT clock_timestamp())"
        )
        conn.commit()


def record_effect(event: ReceivedEvent, conn: Any) -> None:
    """The handler's own change, in the transaction the library opened."""
    conn.execute(
        "INSERT INTO effects (event_id, ordering_key, n, attempt, replayed)"
        " VALUES (%s, %s, %s, %s, %s)",
        (event.event_id, event.ordering_key, (event.payload or {}).get("n"),
         event.delivery_attempt, event.replayed),
    )  # fmt: skip


def effects(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT event_id, ordering_key, n, attempt, replayed FROM effects ORDER BY at"
        ).fetchall()


def effect_counts(url: str) -> dict[uuid.UUID, int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT event_id, count(*) FROM effects GROUP BY 1").fetchall()
    return {row[0]: row[1] for row in rows}


def publish_events(
    publisher: Any, topic: str, count: int, keys: int | None = None, start: int = 0
) -> list[str]:
    """`count` events with the relay's attributes; returns their event ids."""
    ids, futures = [], []
    for n in range(start, start + count):
        event_id = str(uuid.uuid4())
        aggregate = str(uuid.UUID(int=(n % keys if keys else n) + 1))
        attributes = {
            "event_id": event_id, "event_type": "trade.created", "event_version": "1",
            "aggregate_type": "trade", "aggregate_id": aggregate,
        }  # fmt: skip
        futures.append(
            publisher.publish(
                topic,
                json.dumps({"n": n}).encode(),
                ordering_key=f"trade:{aggregate}" if keys else "",
                **attributes,
            )
        )
        ids.append(event_id)
    for future in futures:
        future.result(timeout=30)
    return ids


class ConsumerThread:
    """A Consumer running in a thread of the test process (no signal handlers)."""

    def __init__(
        self, subscription: str, handler: Callable[..., Any], url: str, **options: Any
    ) -> None:
        self.consumer = Consumer(subscription, handler, url, ConsumerOptions(**options))
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.consumer.run(handle_signals=False)
        except BaseException as err:
            self.error = err

    def __enter__(self) -> Consumer:
        self.thread.start()
        return self.consumer

    def __exit__(self, *exc: Any) -> None:
        self.consumer.stop()
        self.thread.join(60)
        assert not self.thread.is_alive(), "consumer did not stop within 60 s"
        if self.error is not None and exc[0] is None:
            raise self.error


def consumer_process(subscription: str, url: str, delay_s: float = 0.0) -> subprocess.Popen:
    """tests/consumer_app.py as a child process (its own signal handling, like a service)."""
    command = [sys.executable, "-m", "tests.support.consumer_app", subscription, url, str(delay_s)]
    return subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
