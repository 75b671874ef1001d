-- The consumer library's dedupe record (consumer/processed.py): one row per event a consumer
-- has processed, written in the same transaction as the handler's own changes, so a redelivered
-- or replayed duplicate finds its row and is acknowledged without running the handler again.
-- Lives in the service's own database, next to the tables its handlers change.
CREATE TABLE processed_events (
    consumer     text        NOT NULL,  -- one service's subscription: others dedupe separately
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
-- cleanup by age (consumer.processed.cleanup_processed)
CREATE INDEX processed_events_processed_at ON processed_events (processed_at);
