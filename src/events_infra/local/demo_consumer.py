"""The demo's consumer: a service built on the consumer library, failing chosen events.

Events whose `demo_fail` attribute is "1" raise in the handler (so they are nacked, Pub/Sub
retries them and, after the subscription's max delivery attempts, dead-letters them) until the
`--fixed` file exists — the "bug fix". Each processed event is one row in `demo_processed`,
written in the library's transaction, so a duplicate delivery would show as a second row.

    python -m cli.local.demo_consumer --subscription projects/P/subscriptions/S \\
        --database-url URL --fixed fixed.flag
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

DEMO_TABLE = """
CREATE TABLE IF NOT EXISTS demo_processed (
    event_id uuid NOT NULL, replayed boolean NOT NULL, attempt integer,
    processed_at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description="events-infra demo consumer")
    parser.add_argument("--subscription", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--fixed", type=Path, required=True)
    args = parser.parse_args()

    import psycopg

    from events_infra.consumer import Consumer, ReceivedEvent, migrate_processed_events

    logging.basicConfig(level=logging.WARNING)
    with psycopg.connect(args.database_url) as conn:
        migrate_processed_events(conn)
        conn.execute(DEMO_TABLE)

    def handle(event: ReceivedEvent, conn: Any) -> None:
        if event.attributes.get("demo_fail") == "1" and not args.fixed.exists():
            raise RuntimeError("demo bug: this event type is not handled yet")
        conn.execute(
            "INSERT INTO demo_processed (event_id, replayed, attempt) VALUES (%s, %s, %s)",
            (event.event_id, event.replayed, event.delivery_attempt),
        )

    Consumer(args.subscription, handle, args.database_url).run()


if __name__ == "__main__":
    main()
