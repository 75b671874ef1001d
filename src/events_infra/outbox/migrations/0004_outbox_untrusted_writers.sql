-- Writers are untrusted: a service's role, a SQL backfill or a compromised writer may INSERT
-- anything its grants allow, and the relay publishes what it finds. This migration narrows what
-- a writer can put in a row to what an event is, and refuses at the INSERT what the relay could
-- only fail on later.

-- 1. Column-level INSERT: a writer fills the event's own columns and nothing else. `txid` (the
--    commit fence), `seq`, `next_attempt_at`, the lease, `published*`, `retry_count` and
--    `last_error` are the relay's: a future txid or next_attempt_at, or a lease, written by a
--    writer would stall the row's key for good. Columns left out of an INSERT take their
--    defaults, which needs no privilege; the insert trigger sets seq.
REVOKE INSERT ON event_outbox FROM events_outbox_writer;
GRANT INSERT (id, event_type, event_version, aggregate_type, aggregate_id, ordering_key,
              payload, attributes)
    ON event_outbox TO events_outbox_writer;

-- 2. The size the relay budgets a claim by (outbox.queries.CLAIM_SQL), measured once here.
--    Nullable, no default: adding it to a live table rewrites nothing; older rows fall back to
--    their stored size.
ALTER TABLE event_outbox ADD COLUMN event_bytes integer;

-- 3. What no row may hold, for every role: reserved attributes (the relay and replay set the
--    identity and replay_* attributes, Pub/Sub the CloudPubSubDeadLetter* ones and Google the
--    goog* ones: events_infra.pubsub.attributes.is_reserved), attribute values that are not
--    strings, payloads nested more than 64 levels (events_infra.pubsub.event_json.MAX_DEPTH:
--    a value exists at level 65 exactly when more are nested), and events over Pub/Sub's
--    10,000,000-byte message limit. A trigger, not CHECK constraints: rows already in the table
--    are left alone (the relay refuses those into event_outbox_failed).
CREATE FUNCTION event_outbox_check_row() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad text;
BEGIN
    IF jsonb_typeof(NEW.attributes) = 'object' THEN
        SELECT key INTO bad FROM jsonb_each(NEW.attributes)
        WHERE key IN ('event_id', 'event_type', 'event_version', 'aggregate_type',
                      'aggregate_id', 'replay_target', 'replay_count', 'replayed_from')
           OR starts_with(key, 'replay_') OR starts_with(key, 'CloudPubSubDeadLetter')
           OR starts_with(lower(key), 'goog')
        LIMIT 1;
        IF bad IS NOT NULL THEN
            RAISE EXCEPTION 'event_outbox: attribute % is reserved (set by the relay, by replay or by Pub/Sub)', bad
                USING ERRCODE = 'check_violation';
        END IF;
        SELECT key INTO bad FROM jsonb_each(NEW.attributes)
        WHERE jsonb_typeof(value) <> 'string' LIMIT 1;
        IF bad IS NOT NULL THEN
            RAISE EXCEPTION 'event_outbox: attribute % must be a string', bad
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    IF jsonb_path_exists(NEW.payload, 'strict $.**{65}') THEN
        RAISE EXCEPTION 'event_outbox: payload nests more than 64 levels'
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.event_bytes := octet_length(NEW.payload::text) + octet_length(NEW.attributes::text);
    IF NEW.event_bytes > 10000000 THEN
        RAISE EXCEPTION 'event_outbox: event is % bytes; Pub/Sub''s message limit is 10000000', NEW.event_bytes
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

-- Fires after event_outbox_before_insert (triggers of one event fire in name order), so the
-- size it records is the row's final one.
CREATE TRIGGER event_outbox_check_row
    BEFORE INSERT OR UPDATE OF payload, attributes ON event_outbox
    FOR EACH ROW EXECUTE FUNCTION event_outbox_check_row();
