"""The relay's claim (`event_outbox_claim`, migration 0005) on backlogs whose oldest rows cannot
go: heads beyond the oldest rows are found key by key, per-key order holds, and no key waits for
ever. Real PostgreSQL; rows written with plain SQL, as a backfill would."""

from __future__ import annotations

import random
from collections.abc import Iterable

import psycopg
import pytest

from events_infra.outbox.queries import CLAIM_SQL

FILL = (
    "INSERT INTO event_outbox (event_type, aggregate_type, aggregate_id, ordering_key, payload)"
    " SELECT 'trade.created', 'trade', gen_random_uuid(), %s || g, '{}'::jsonb"
    " FROM generate_series(%s::int, %s::int) g"
)
"""Rows for keys prefix||first … prefix||last, one row each, in that order."""

RUN = (
    "INSERT INTO event_outbox (event_type, aggregate_type, aggregate_id, ordering_key, payload)"
    " SELECT 'trade.created', 'trade', gen_random_uuid(), %s, jsonb_build_object('n', g)"
    " FROM generate_series(1, %s::int) g"
)
"""`n` rows of one key."""


def claim(conn: psycopg.Connection, keys: int, per_key: int = 100, batch: int = 500) -> list[str]:
    """One claim, rolled back (its locks with it); the claimed rows' ordering keys, in order."""
    with conn.transaction(force_rollback=True):
        params = {"keys": keys, "per_key": per_key, "batch": batch, "max_bytes": 1 << 40}
        rows = conn.execute(
            "SELECT o.ordering_key FROM (" + CLAIM_SQL + ") c JOIN event_outbox o USING (id)"
            " ORDER BY o.seq",
            params,
        ).fetchall()
    return [key for (key,) in rows]


def stuck(conn: psycopg.Connection, key: str, how: str) -> None:
    """Make `key`'s head unclaimable: in backoff, or leased by another relay."""
    column = "next_attempt_at" if how == "backoff" else "lease_expires_at"
    owner = ", lease_owner = 'other'" if how == "leased" else ""
    conn.execute(
        f"UPDATE event_outbox SET {column} = now() + interval '1 hour'{owner}"
        " WHERE seq = (SELECT min(seq) FROM event_outbox WHERE ordering_key = %s)",
        (key,),
    )


def test_a_key_in_backoff_holding_the_oldest_rows_stalls_only_itself(outbox_db: str) -> None:
    """The case a window alone gets wrong: one aggregate's 3,000 rows fill the oldest rows and
    its head waits an hour; every other key is behind them and still goes."""
    with psycopg.connect(outbox_db) as conn:
        conn.execute(RUN, ("big-aggregate", 3000))
        conn.execute(FILL, ("k", 1, 40))
        stuck(conn, "big-aggregate", "backoff")
        conn.commit()
        claimed = claim(conn, keys=100)
    assert sorted(claimed) == sorted(f"k{i}" for i in range(1, 41))


def test_every_pending_key_is_found_whatever_key_the_scan_starts_from(outbox_db: str) -> None:
    """Beyond the window the scan starts at the key of a random row and wraps round: with fewer
    keys than it visits, every claim finds all of them."""
    with psycopg.connect(outbox_db) as conn:
        conn.execute(RUN, ("held", 1500))
        conn.execute(FILL, ("k", 1, 60))
        stuck(conn, "held", "leased")
        conn.commit()
        for _ in range(15):  # fifteen random starting keys
            assert len(set(claim(conn, keys=100, per_key=1))) == 60


def test_with_more_keys_than_one_scan_visits_every_key_is_drained(outbox_db: str) -> None:
    """3,000 one-row keys behind a stuck key, more than a claim asking for 20 keys visits (2,000):
    claim and publish until empty; each claim still finds 20, and nothing is left behind."""
    with psycopg.connect(outbox_db) as conn:
        conn.execute(RUN, ("held", 1200))
        conn.execute(FILL, ("k", 1, 3000))
        stuck(conn, "held", "backoff")
        conn.commit()
        claims = 0
        while claims < 200:
            with conn.transaction():
                ids = [
                    row[0]
                    for row in conn.execute(
                        CLAIM_SQL, {"keys": 20, "per_key": 1, "batch": 500, "max_bytes": 1 << 40}
                    )
                ]
                conn.execute(
                    "UPDATE event_outbox SET published = true, published_at = now()"
                    " WHERE id = ANY(%s)",
                    (ids,),
                )
            if not ids:
                break
            assert len(ids) == 20 or claims == 149
            claims += 1
        left = conn.execute(
            "SELECT count(*) FROM event_outbox WHERE NOT published AND ordering_key <> 'held'"
        ).fetchone()[0]
    assert (left, claims) == (0, 150)


def runs_are_heads_and_prefixes(conn: psycopg.Connection, claimed: Iterable[object]) -> None:
    """Per-key order: the claimed rows of each key are its oldest unpublished rows, consecutive,
    starting at its head, and the head was claimable."""
    pending = conn.execute(
        "SELECT id, ordering_key, seq, next_attempt_at <= now() AND lease_expires_at IS NULL"
        " FROM event_outbox WHERE NOT published ORDER BY seq"
    ).fetchall()
    by_key: dict[str, list[tuple[object, bool]]] = {}
    for row_id, key, _seq, free in pending:
        by_key.setdefault(key, []).append((row_id, free))
    taken = set(claimed)
    for key, rows in by_key.items():
        ids = [row_id for row_id, _ in rows]
        mine = [row_id for row_id in ids if row_id in taken]
        assert mine == ids[: len(mine)], key  # a prefix of the key's pending rows
        if mine:
            assert rows[0][1], key  # whose head was due and unleased


def test_random_backlogs_keep_per_key_order_and_the_bounds(outbox_db: str) -> None:
    shuffle = random.Random(24)
    with psycopg.connect(outbox_db) as conn:
        for key in range(300):  # interleaved runs of 1–12 rows, 2,000-ish rows in all
            conn.execute(RUN, (f"key{key}", shuffle.randint(1, 12)))
        conn.execute(
            "UPDATE event_outbox SET ordering_key = 'key' || (seq % 300) WHERE seq % 7 = 0"
        )
        conn.commit()
        for key in shuffle.sample(range(300), 60):
            stuck(conn, f"key{key}", shuffle.choice(["backoff", "leased"]))
        conn.execute(  # and leased rows in the middle of runs: a run stops before them
            "UPDATE event_outbox SET lease_owner = 'other',"
            " lease_expires_at = now() + interval '1 hour' WHERE seq % 29 = 0"
        )
        conn.commit()
        for keys, per_key, batch in [(500, 100, 500), (10, 3, 500), (200, 1, 50), (7, 100, 9)]:
            params = {"keys": keys, "per_key": per_key, "batch": batch, "max_bytes": 1 << 40}
            with conn.transaction(force_rollback=True):
                ids = [row[0] for row in conn.execute(CLAIM_SQL, params)]
                keys_of = conn.execute(
                    "SELECT ordering_key, count(*) FROM event_outbox WHERE id = ANY(%s)"
                    " GROUP BY ordering_key",
                    (ids,),
                ).fetchall()
            assert ids and len(ids) <= batch and len(set(ids)) == len(ids)
            assert len(keys_of) <= keys and max(n for _, n in keys_of) <= per_key
            runs_are_heads_and_prefixes(conn, ids)


def test_a_relay_that_may_not_lock_rows_cannot_claim_and_writers_cannot_call_it(
    outbox_db: str, writer_login: str
) -> None:
    with (
        psycopg.connect(outbox_db, user=writer_login) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(CLAIM_SQL, {"keys": 1, "per_key": 1, "batch": 1, "max_bytes": 1})
