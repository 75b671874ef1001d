"""The processed-events table: migrations, the dedupe statement, and cleanup by age.

A row must outlive every way a duplicate can arrive: Pub/Sub redelivery (minutes), a relay that
republishes after a crash (minutes), and a DLQ replay (up to the dead-letter retention, 14 days in
prod). Cleanup therefore refuses to delete rows younger than `MIN_RETENTION_S`.
"""

from __future__ import annotations

from typing import Any

from events_infra.db.migrations import MigrationReport, apply_migrations, load_migrations

MIGRATIONS_TABLE = "consumer_schema_migrations"
LOCK_KEY = 0x636F6E73756D  # "consum": its own lock, apart from the outbox's
MIN_RETENTION_S = 15 * 86400
"""Longer than prod's 14-day dead-letter retention: a replayed letter still finds its row."""
DEFAULT_RETENTION_S = 30 * 86400

RECORD_SQL = """
INSERT INTO processed_events (consumer, event_id)
SELECT %s, id FROM unnest(%s::uuid[]) AS id
ON CONFLICT DO NOTHING
RETURNING event_id
"""
"""Records a batch's event ids; returns those not processed before (the ones to handle)."""

CLEANUP_SQL = """
DELETE FROM processed_events WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM processed_events
    WHERE processed_at < now() - make_interval(secs => %s)
    LIMIT %s
))
"""


def migrate_processed_events(conn: Any) -> MigrationReport:
    """Create or update the processed_events table in the service's database."""
    migrations = load_migrations("events_infra.consumer")
    return apply_migrations(conn, migrations, MIGRATIONS_TABLE, LOCK_KEY)


def cleanup_processed(
    conn: Any, older_than_s: float = DEFAULT_RETENTION_S, batch: int = 5000
) -> int:
    """Delete rows older than `older_than_s`, one committed batch at a time; return how many."""
    if older_than_s < MIN_RETENTION_S:
        raise ValueError(
            f"processed events must be kept at least {MIN_RETENTION_S // 86400} days "
            "(a DLQ replay can bring an event back up to 14 days later); got "
            f"{older_than_s / 86400:g} days"
        )
    removed = 0
    while True:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(CLEANUP_SQL, (older_than_s, batch))
            deleted = cur.rowcount
        removed += deleted
        if deleted < batch:
            return removed
