"""SQL the relay and `eventsctl outbox` run against `event_outbox`, kept in one place so tests
can EXPLAIN exactly what production runs."""

FENCE_SQL = "SELECT pg_snapshot_xmin(pg_current_snapshot())"

CLAIM_SQL = """
SELECT o.id
FROM event_outbox o
WHERE NOT o.published
  AND o.txid < pg_snapshot_xmin(pg_current_snapshot())
  AND o.next_attempt_at <= now()
  AND (o.lease_expires_at IS NULL OR o.lease_expires_at < now())
  AND NOT EXISTS (
      SELECT 1 FROM event_outbox earlier
      WHERE NOT earlier.published
        AND earlier.ordering_key = o.ordering_key
        AND earlier.seq < o.seq)
ORDER BY o.seq
LIMIT %s
FOR UPDATE OF o SKIP LOCKED
"""
"""Rows a relay may publish now: committed before every running transaction began (the
fence), due, not leased, and the head of their ordering key (a key whose head waits or is leased
is not overtaken). Walks `event_outbox_pending`; the head check probes
`event_outbox_pending_by_key`."""

CLEANUP_SQL = """
DELETE FROM event_outbox
WHERE id IN (
    SELECT id FROM event_outbox
    WHERE published AND published_at < now() - %s * interval '1 second'
    LIMIT %s)
"""
"""One bounded batch of published rows older than the given seconds (uses
`event_outbox_published_at_idx`)."""

STATUS_SQL = """
SELECT
    (SELECT count(*) FROM event_outbox WHERE NOT published),
    (SELECT extract(epoch FROM now() - created_at) FROM event_outbox
        WHERE NOT published ORDER BY seq LIMIT 1),
    (SELECT count(*) FROM event_outbox WHERE NOT published AND retry_count > 0),
    (SELECT count(*) FROM event_outbox_failed)
"""
