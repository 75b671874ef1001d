"""SQL the relay and `eventsctl outbox` run against `event_outbox`, kept in one place so tests
can EXPLAIN exactly what production runs (the claim's own statements, inside
`event_outbox_claim`, through `auto_explain`)."""

FENCE_SQL = "SELECT pg_snapshot_xmin(pg_current_snapshot())"

CLAIM_SQL = """
SELECT id FROM event_outbox_claim(%(keys)s, %(per_key)s, %(batch)s, %(max_bytes)s) AS c(id)
"""
"""Rows a relay may publish now, in runs per ordering key, for at most `keys` keys (the keys
the relay has room for in flight), `batch` rows and `max_bytes` bytes: the key's head
(committed before every running transaction began — the fence —, due, not leased, no earlier
unpublished row of its key) and up to `per_key` consecutive rows after it, stopping at the
first row that is not past the fence or is leased. Locking the head (`FOR UPDATE SKIP LOCKED`)
keeps two relays from starting a run on one key at once. Whole runs of the oldest heads fill
the batch first, so a burst on one aggregate goes out together; the batch ends at the row that
would cross the byte budget (from `event_bytes`, set at insert; the stored size for rows written
before it existed), so a run may be cut short (its rest is the key's next head), and always
holds at least one row.

A function (migration 0005 explains its two ways of finding heads) because a loop stops as
soon as the batch is full and can find heads beyond the oldest rows one key at a time: the
claim's cost follows the rows it returns and the keys pending, not the length of the backlog
(`bench/claim_backlog.py`)."""

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
