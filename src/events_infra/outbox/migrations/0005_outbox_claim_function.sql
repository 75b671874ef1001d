-- The relay's claim as one server-side function (issue 24, backlog at scale).
--
-- The set-based claim it replaces had two costs that grew with the backlog, not with the work:
-- it built every head's run before keeping the first `max_rows` rows (500 heads x 100 rows
-- sorted to keep 500: ~200 ms over 1,000 hot keys), and when fewer heads were free than asked
-- for it walked the whole backlog in seq order looking for more (2.9 s over 200,000 rows with
-- 700 of 1,000 keys leased). A loop can stop as soon as the batch is full, and can look for heads
-- beyond the oldest rows key by key (a loose index scan) instead of row by row.
--
-- Rows returned, in this order: for each head, oldest first, its run of up to `per_key`
-- consecutive unpublished rows, stopping at the first row not yet past the commit-visibility
-- fence or leased; at most `max_keys` heads, `max_rows` rows and `max_bytes` bytes (the batch
-- ends at the row that would cross the budget, and always holds at least one row).
--
-- A head is the lowest unpublished seq of its key that is past the fence, due and unleased; it
-- is locked (FOR UPDATE SKIP LOCKED) so two relays never start a run on one key at once. Heads
-- are looked for in two places:
--   1. the oldest `window` unpublished rows, in seq order (cheap when keys are many: nearly
--      every row there is a head);
--   2. only if that window was full and the batch is not: one head per key found by a loose
--      index scan over event_outbox_pending_by_key, at most `visit` keys, oldest head first.
--      The scan sweeps the key space round-robin: it starts after the key where this session's
--      previous scan stopped (the session setting `event_outbox.scan_from`, set here) and wraps
--      round. With fewer pending keys than `visit` (hot keys) every key is seen on every claim;
--      with more, the next claims go on from there, so every key is seen within a few claims
--      and none waits behind a key order. (A connection pooler that hands each transaction a
--      different session only makes the sweep start elsewhere.)
-- A key whose oldest rows are in backoff or leased therefore holds back only itself.
--
-- SET options: every statement below is planned once per session and reused (a generic plan;
-- re-planning the run query for every head cost more than running it), and bitmap scans are
-- off because the generic plan of the run query would otherwise read and sort a hot key's
-- whole backlog to return its first `per_key` rows.

CREATE FUNCTION event_outbox_claim(max_keys integer, per_key integer, max_rows integer,
                                   max_bytes bigint)
RETURNS SETOF uuid
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_bitmapscan = off
AS $$
DECLARE
    fence xid8 := pg_snapshot_xmin(pg_current_snapshot());
    window_rows integer := greatest(1000, 4 * max_keys);
    visit integer := greatest(2000, 4 * max_keys);
    window_end bigint;
    window_full boolean;
    scan_from text := coalesce(current_setting('event_outbox.scan_from', true), '');
    scanned_to text;
    beyond boolean := false;
    far_keys text[];
    far_seqs bigint[];
    far integer := 0;
    head_key text;
    head_seq bigint;
    keys integer := 0;
    taken integer := 0;
    taken_bytes bigint := 0;
    heads refcursor;
    r record;
BEGIN
    IF max_keys < 1 OR per_key < 1 OR max_rows < 1 THEN
        RETURN;
    END IF;
    SELECT max(w.seq), count(*) >= window_rows INTO window_end, window_full
    FROM (SELECT seq FROM event_outbox WHERE NOT published ORDER BY seq LIMIT window_rows) w;
    IF window_end IS NULL THEN
        RETURN;  -- nothing pending
    END IF;

    OPEN heads FOR  -- 1. the oldest rows, heads locked as they are read
        SELECT o.ordering_key, o.seq FROM event_outbox o
        WHERE NOT o.published AND o.seq <= window_end
          AND o.txid < fence AND o.next_attempt_at <= now()
          AND (o.lease_expires_at IS NULL OR o.lease_expires_at < now())
          AND o.seq = (SELECT min(e.seq) FROM event_outbox e
                       WHERE NOT e.published AND e.ordering_key = o.ordering_key)
        ORDER BY o.seq
        FOR UPDATE OF o SKIP LOCKED;
    LOOP
        IF NOT beyond THEN
            FETCH heads INTO head_key, head_seq;
            IF NOT FOUND THEN
                CLOSE heads;
                -- a window that held every pending row leaves nothing beyond it
                EXIT WHEN NOT window_full;
                beyond := true;
                -- 2. one head per key beyond the window: keys after scan_from, then from the
                -- first key round to scan_from itself, at most `visit` keys
                WITH RECURSIVE k(ordering_key, seq, txid, next_attempt_at, lease_expires_at,
                                 wrapped, n) AS (
                    (SELECT first.*, 1 FROM (
                        (SELECT ordering_key, seq, txid, next_attempt_at, lease_expires_at,
                                false AS wrapped
                         FROM event_outbox
                         WHERE NOT published AND ordering_key > scan_from
                         ORDER BY ordering_key, seq LIMIT 1)
                        UNION ALL
                        (SELECT ordering_key, seq, txid, next_attempt_at, lease_expires_at, true
                         FROM event_outbox
                         WHERE NOT published AND ordering_key <= scan_from
                         ORDER BY ordering_key, seq LIMIT 1)
                        LIMIT 1) first)
                    UNION ALL
                    SELECT nxt.*, k.n + 1
                    FROM k CROSS JOIN LATERAL (
                        (SELECT e.ordering_key, e.seq, e.txid, e.next_attempt_at,
                                e.lease_expires_at, false
                         FROM event_outbox e
                         WHERE NOT k.wrapped AND NOT e.published
                           AND e.ordering_key > k.ordering_key
                         ORDER BY e.ordering_key, e.seq LIMIT 1)
                        UNION ALL  -- past the last key: on from the first
                        (SELECT e.ordering_key, e.seq, e.txid, e.next_attempt_at,
                                e.lease_expires_at, true
                         FROM event_outbox e
                         WHERE NOT k.wrapped AND NOT e.published AND e.ordering_key <= scan_from
                         ORDER BY e.ordering_key, e.seq LIMIT 1)
                        UNION ALL  -- wrapped: up to the key it started after
                        (SELECT e.ordering_key, e.seq, e.txid, e.next_attempt_at,
                                e.lease_expires_at, true
                         FROM event_outbox e
                         WHERE k.wrapped AND NOT e.published
                           AND e.ordering_key > k.ordering_key AND e.ordering_key <= scan_from
                         ORDER BY e.ordering_key, e.seq LIMIT 1)
                        LIMIT 1
                    ) nxt
                    WHERE k.n < visit
                )
                SELECT array_agg(k.ordering_key ORDER BY k.seq) FILTER (WHERE claimable),
                       array_agg(k.seq ORDER BY k.seq) FILTER (WHERE claimable),
                       (array_agg(k.ordering_key ORDER BY k.n DESC))[1]
                INTO far_keys, far_seqs, scanned_to
                FROM (SELECT k.*, k.seq > window_end AND k.txid < fence
                                  AND k.next_attempt_at <= now()
                                  AND (k.lease_expires_at IS NULL OR k.lease_expires_at < now())
                                  AS claimable
                      FROM k) k;
                PERFORM set_config('event_outbox.scan_from', coalesce(scanned_to, ''), false);
                CONTINUE;
            END IF;
        ELSE
            far := far + 1;
            EXIT WHEN far > coalesce(array_length(far_seqs, 1), 0);
            head_key := far_keys[far];
            head_seq := far_seqs[far];
            PERFORM 1 FROM event_outbox o  -- lock it, if it is still a free head
            WHERE o.seq = head_seq AND NOT o.published AND o.next_attempt_at <= now()
              AND (o.lease_expires_at IS NULL OR o.lease_expires_at < now())
            FOR UPDATE SKIP LOCKED;
            CONTINUE WHEN NOT FOUND;
        END IF;

        keys := keys + 1;
        FOR r IN  -- the head's run
            SELECT x.id, x.txid, x.lease_expires_at,
                   coalesce(x.event_bytes,
                            pg_column_size(x.payload) + pg_column_size(x.attributes)) AS bytes
            FROM event_outbox x
            WHERE NOT x.published AND x.ordering_key = head_key AND x.seq >= head_seq
            ORDER BY x.seq LIMIT per_key
        LOOP
            EXIT WHEN r.txid >= fence OR r.lease_expires_at >= now();
            IF taken > 0 AND taken_bytes + r.bytes > max_bytes THEN
                RETURN;
            END IF;
            taken := taken + 1;
            taken_bytes := taken_bytes + r.bytes;
            RETURN NEXT r.id;
            IF taken >= max_rows THEN
                RETURN;
            END IF;
        END LOOP;
        IF keys >= max_keys THEN
            RETURN;
        END IF;
    END LOOP;
END $$;

-- Only the relay claims: the function runs with the caller's rights (it locks rows, which
-- needs UPDATE on event_outbox), and nobody else has a reason to call it.
REVOKE EXECUTE ON FUNCTION event_outbox_claim(integer, integer, integer, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION event_outbox_claim(integer, integer, integer, bigint)
    TO events_outbox_relay;
