"""Removing published outbox rows after a grace period, in bounded batches so a big cleanup
never holds long locks or bloats one transaction."""

from __future__ import annotations

from typing import Any

from events_infra.outbox.queries import CLEANUP_SQL


def cleanup(
    conn: Any, older_than_s: float, batch_size: int = 1000, max_batches: int = 10_000
) -> int:
    """Delete published rows older than `older_than_s`, one committed batch at a time."""
    removed = 0
    for _ in range(max_batches):
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(CLEANUP_SQL, (older_than_s, batch_size))
            deleted = cur.rowcount
        removed += deleted
        if deleted < batch_size:
            break
    return removed
