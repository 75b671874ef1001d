"""SQL the relay and `eventsctl outbox` run against `event_outbox`, kept in one place so tests
can EXPLAIN exactly what production runs."""

FENCE_SQL = "SELECT pg_snapshot_xmin(pg_current_snapshot())"

CLAIM_SQL = """
WITH heads AS (
    SELECT o.ordering_key, o.seq
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
    LIMIT %(keys)s
    FOR UPDATE OF o SKIP LOCKED
), runs AS (
    SELECT run.id, h.seq AS head_seq, run.seq, run.bytes
    FROM heads h
    CROSS JOIN LATERAL (
        SELECT r.id, r.seq,
               coalesce(r.event_bytes, pg_column_size(r.payload) + pg_column_size(r.attributes))
                   AS bytes,
               bool_and(r.txid < pg_snapshot_xmin(pg_current_snapshot())
                        AND (r.lease_expires_at IS NULL OR r.lease_expires_at < now()))
                   OVER (ORDER BY r.seq) AS claimable
        FROM event_outbox r
        WHERE NOT r.published AND r.ordering_key = h.ordering_key AND r.seq >= h.seq
        ORDER BY r.seq
        LIMIT %(per_key)s
    ) run
    WHERE run.claimable
    ORDER BY h.seq, run.seq
    LIMIT %(batch)s
)
SELECT id FROM (
    SELECT id, head_seq, seq,
           sum(bytes) OVER (ORDER BY head_seq, seq) AS upto,
           row_number() OVER (ORDER BY head_seq, seq) AS n
    FROM runs
) sized
WHERE upto <= %(max_bytes)s OR n = 1
ORDER BY head_seq, seq
"""
"""Rows a relay may publish now, in runs per ordering key, for at most `keys` keys (the keys
the relay has room for in flight) and `batch` rows: the key's head (committed before
every running transaction began — the fence —, due, not leased, no earlier unpublished row of
its key) and up to `per_key` consecutive rows after it, stopping at the first row that is not
past the fence or is leased. Locking the head (`FOR UPDATE SKIP LOCKED`) keeps two relays from
starting a run on one key at once. Whole runs of the oldest heads fill the batch first, so a
burst on one aggregate goes out together. The batch is bounded by bytes too (`max_bytes`, from
`event_bytes`, set at insert; the stored size for rows written before it existed): it ends at
the row that would cross the budget, so a run may be cut short (its rest is the key's next
head), and always holds at least one row. Walks `event_outbox_pending`; the head check and the
runs probe `event_outbox_pending_by_key`."""

LEASE_SQL = """
UPDATE event_outbox SET lease_owner = %s, lease_expires_at = now() + %s * interval '1 second'
WHERE id = ANY(%s)
RETURNING id, seq, event_type, event_version, aggregate_type, aggregate_id, ordering_key,
          payload::text AS payload, attributes::text AS attributes, retry_count
"""
"""The claimed rows. Payload and attributes come back as JSON text, decoded row by row by the
relay (`pubsub.publish_requests.to_message`): decoding them in the driver would let one row
nested too deep for the decoder fail the whole claim, every time (a crash loop)."""

PUBLISHED_SQL = """
UPDATE event_outbox AS o
SET published = true, published_at = now(), pubsub_message_id = v.message_id,
    lease_owner = NULL, lease_expires_at = NULL, last_error = NULL
FROM (SELECT unnest(%s::uuid[]) AS id, unnest(%s::text[]) AS message_id) AS v
WHERE o.id = v.id AND o.lease_owner = %s
"""
"""Settle published rows, only those this relay still leases (a lease that ran out may have
been taken over; the other relay settles its own copy)."""

RETRY_SQL = """
UPDATE event_outbox AS o
SET retry_count = o.retry_count + v.bump, last_error = v.error,
    next_attempt_at = now() + v.delay * interval '1 second',
    lease_owner = NULL, lease_expires_at = NULL
FROM (SELECT unnest(%s::uuid[]) AS id, unnest(%s::text[]) AS error,
             unnest(%s::float8[]) AS delay, unnest(%s::int[]) AS bump) AS v
WHERE o.id = v.id AND o.lease_owner = %s
"""

UNLEASE_SQL = """
UPDATE event_outbox SET lease_owner = NULL, lease_expires_at = NULL
WHERE id = ANY(%s) AND lease_owner = %s
"""
"""Give back rows that were not attempted (an earlier row of their key failed first)."""

FAIL_SQL = """
WITH gone AS (
    DELETE FROM event_outbox AS o
    USING (SELECT unnest(%s::uuid[]) AS id, unnest(%s::text[]) AS reason) AS v
    WHERE o.id = v.id AND o.lease_owner = %s
    RETURNING o.*, v.reason
)
INSERT INTO event_outbox_failed (id, event_type, event_version, aggregate_type, aggregate_id,
    ordering_key, seq, payload, attributes, retry_count, created_at, reason)
SELECT id, event_type, event_version, aggregate_type, aggregate_id, ordering_key, seq, payload,
       attributes, retry_count, created_at, reason FROM gone
"""

RELEASE_SQL = """
UPDATE event_outbox SET lease_owner = NULL, lease_expires_at = NULL
WHERE lease_owner = %s AND NOT published AND NOT (id = ANY(%s::uuid[]))
"""
"""At (re)connect: leases left by this relay's previous connection, except the rows it still
has in flight (given back, another relay could publish them beside ours, out of order)."""

RENEW_SQL = """
UPDATE event_outbox SET lease_expires_at = now() + %s * interval '1 second'
WHERE id = ANY(%s::uuid[]) AND lease_owner = %s AND NOT published
RETURNING id
"""
"""Extend the leases of rows still in flight (queued behind the in-flight bound, or on a slow
request), so no other relay takes a key over while its request may still land."""

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
    (SELECT count(*) FROM event_outbox_failed),
    (SELECT last_error FROM event_outbox
        WHERE NOT published AND last_error IS NOT NULL ORDER BY seq LIMIT 1)
"""
"""Backlog, oldest unpublished age, failing rows, rows failed for good, and why the oldest
failing row failed (Pub/Sub's refusal or the outage it met)."""
