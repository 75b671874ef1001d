-- Plain-SQL writes: a service in any language, or a SQL backfill, can write
--     INSERT INTO event_outbox (event_type, aggregate_type, aggregate_id, payload) VALUES (...)
-- and get what enqueue() gives: the default ordering key, seq in commit order per key, and a
-- NOTIFY so relays publish at once. enqueue() itself is now a single INSERT relying on these.

-- A column DEFAULT cannot read other columns, so the default ordering key is set by a BEFORE
-- trigger (NOT NULL is checked after BEFORE triggers). The same trigger serialises writers of one
-- key: it takes the key's transaction-scoped advisory lock, then draws `seq` again, so a writer
-- that waited on the lock gets a seq after the one it waited for (seq order = commit order per
-- key, which the relay's claim relies on).
--
-- The lock is on one of 1,024 buckets of keys, not on the key itself: a backfill writing 50,000
-- aggregates in one transaction would otherwise need 50,000 locks and exhaust the shared lock
-- table (max_locks_per_transaction). Keys sharing a bucket only wait for each other. Writers lock
-- buckets in row order, so rows are written sorted by (bucket, key) — enqueue_many does this
-- (outbox/event_validation.py computes the same bucket) — and two writers cannot deadlock. A
-- hand-written multi-row INSERT in another order can deadlock with a concurrent writer; PostgreSQL
-- then aborts one of them, which retries.
CREATE FUNCTION event_outbox_lock_bucket(ordering_key text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ('x' || left(md5(ordering_key), 8))::bit(32)::integer & 1023
$$;

CREATE FUNCTION event_outbox_before_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.ordering_key IS NULL THEN
        NEW.ordering_key := NEW.aggregate_type || ':' || NEW.aggregate_id::text;
    END IF;
    -- classid 0x6f62 ("ob") keeps these apart from other advisory locks on the server
    PERFORM pg_advisory_xact_lock(28514, event_outbox_lock_bucket(NEW.ordering_key));
    NEW.seq := nextval(pg_get_serial_sequence('event_outbox', 'seq'));
    RETURN NEW;
END $$;

CREATE TRIGGER event_outbox_before_insert
    BEFORE INSERT ON event_outbox
    FOR EACH ROW EXECUTE FUNCTION event_outbox_before_insert();

-- One NOTIFY per statement (PostgreSQL folds identical notifications of a transaction into one).
CREATE FUNCTION event_outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('event_outbox', '');
    RETURN NULL;
END $$;

CREATE TRIGGER event_outbox_notify
    AFTER INSERT ON event_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION event_outbox_notify();

-- The trigger draws seq with nextval() as the inserting role; `INSERT ... RETURNING id` needs
-- SELECT on the returned column. Nothing else is granted: writers still cannot read events.
DO $$
BEGIN
    EXECUTE format(
        'GRANT USAGE ON SEQUENCE %s TO events_outbox_writer',
        pg_get_serial_sequence('event_outbox', 'seq')
    );
END $$;
GRANT SELECT (id) ON event_outbox TO events_outbox_writer;
