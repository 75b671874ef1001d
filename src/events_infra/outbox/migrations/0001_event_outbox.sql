-- The transactional outbox: services INSERT here in the same transaction as their business
-- change; the relay publishes committed rows to Pub/Sub. Corrected from the audit's DDL (whose
-- inline `INDEX ... WHERE` is not valid PostgreSQL: partial indexes are separate statements) and
-- extended with what a correct relay needs. README.md ("Outbox schema") explains each column.

CREATE TABLE event_outbox (
    -- the audit's columns
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(), -- event id: consumers dedupe on it
    event_type      varchar(100) NOT NULL CHECK (event_type <> ''),
    event_version   integer     NOT NULL DEFAULT 1 CHECK (event_version >= 1),
    aggregate_id    uuid        NOT NULL,
    payload         jsonb       NOT NULL,
    published       boolean     NOT NULL DEFAULT false,
    published_at    timestamptz,
    retry_count     integer     NOT NULL DEFAULT 0 CHECK (retry_count >= 0), -- failed publish attempts
    created_at      timestamptz NOT NULL DEFAULT now(),

    -- ordering: per-key order is `seq` order. enqueue() takes a transaction-scoped advisory lock
    -- on the ordering key before inserting, so for one key `seq` is also commit order.
    aggregate_type  varchar(100) NOT NULL CHECK (aggregate_type <> ''),
    ordering_key    text        NOT NULL CHECK (ordering_key <> ''),
    seq             bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,

    -- commit-visibility fence: sequence values commit out of order, so a relay may only publish
    -- rows whose writing transaction is older than every transaction still running
    -- (txid < pg_snapshot_xmin(pg_current_snapshot())).
    txid            xid8        NOT NULL DEFAULT pg_current_xact_id(),

    -- what goes to Pub/Sub besides the payload
    attributes      jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(attributes) = 'object'),
    pubsub_message_id text,

    -- retries: a row is claimable again at next_attempt_at; last_error says why it is waiting
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,

    -- lease: a relay claims rows by committing a lease, publishes outside any transaction, and
    -- settles only rows whose lease it still holds; an expired lease makes the row claimable again
    lease_owner     text,
    lease_expires_at timestamptz,

    CONSTRAINT event_outbox_published_at CHECK (published = (published_at IS NOT NULL))
);

-- The relay's claim: unpublished rows in seq order (see outbox/queries.py CLAIM_SQL).
CREATE INDEX event_outbox_pending ON event_outbox (seq) WHERE NOT published;
-- The relay's "is this the head of its key?" check, and per-key blocking while a head waits.
CREATE INDEX event_outbox_pending_by_key ON event_outbox (ordering_key, seq) WHERE NOT published;
-- Cleanup of published rows by age (eventsctl outbox cleanup).
CREATE INDEX event_outbox_published_at_idx ON event_outbox (published_at) WHERE published;

-- A queue table: every row is inserted, updated once or twice and deleted. Vacuum it early
-- and often so dead tuples never pile up under the claim index.
ALTER TABLE event_outbox SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0,
    fillfactor = 90
);

-- Rows that failed for good (oversize, bad attributes, or out of attempts): moved here in the
-- same transaction that deletes them from event_outbox, kept for inspection and re-enqueue.
CREATE TABLE event_outbox_failed (
    id              uuid        PRIMARY KEY,
    event_type      varchar(100) NOT NULL,
    event_version   integer     NOT NULL,
    aggregate_type  varchar(100) NOT NULL,
    aggregate_id    uuid        NOT NULL,
    ordering_key    text        NOT NULL,
    seq             bigint      NOT NULL,
    payload         jsonb       NOT NULL,
    attributes      jsonb       NOT NULL,
    retry_count     integer     NOT NULL,
    created_at      timestamptz NOT NULL,
    failed_at       timestamptz NOT NULL DEFAULT now(),
    reason          text        NOT NULL
);
CREATE INDEX event_outbox_failed_failed_at ON event_outbox_failed (failed_at);
