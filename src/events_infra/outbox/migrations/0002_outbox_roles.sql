-- Least-privilege database roles for the outbox, granted to IAM database users by the Access
-- component (gcp.sql.User database_roles). Roles are cluster-wide, so creation tolerates a role
-- that another database on the same server already created.

DO $$
BEGIN
    CREATE ROLE events_outbox_writer NOLOGIN;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

DO $$
BEGIN
    CREATE ROLE events_outbox_relay NOLOGIN;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

-- services: append events, nothing else (enqueue only inserts)
GRANT INSERT ON event_outbox TO events_outbox_writer;

-- the relay: claim, lease, settle, clean up, and move rows that failed for good
GRANT SELECT, UPDATE, DELETE ON event_outbox TO events_outbox_relay;
GRANT SELECT, INSERT ON event_outbox_failed TO events_outbox_relay;
