"""The relay's claim (`event_outbox_claim`, migration 0005) on backlogs whose oldest rows cannot
go: heads beyond the oldest rows are found key by key, per-key order holds, and no key waits for
ever. Real PostgreSQL; rows written with plain SQL, as a backfill would."""

from __future__ import annotations

import random
import uuid

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
    """Beyond the window the scan starts after the key the session's previous scan stopped at
    and wraps round: with fewer keys than it visits, every claim finds all of them, whether it
    starts before the first key, in the middle, at the last or past it."""
    with psycopg.connect(outbox_db) as conn:
        conn.execute(RUN, ("m-held", 1500))  # sorts among the k keys' neighbours, not first
        conn.execute(FILL, ("k", 10, 69))
        stuck(conn, "m-held", "leased")
        conn.commit()
        for start in ("", "a", "k10", "k37", "k69", "m-held", "zzz"):
            conn.execute("SELECT set_config('event_outbox.scan_from', %s, false)", (start,))
            conn.commit()
            assert sorted(claim(conn, keys=100, per_key=1)) == [f"k{i}" for i in range(10, 70)]


def test_the_scan_goes_on_where_the_last_claim_stopped(outbox_db: str) -> None:
    """With more keys than one scan visits, a committed claim leaves the session's starting
    point at the last key it visited, so the next claim sweeps the following keys."""
    with psycopg.connect(outbox_db) as conn:
        conn.execute(RUN, ("0-held", 1100))
        conn.execute(FILL, ("k", 10000, 14999))  # 5,000 keys; one scan visits 2,000
        stuck(conn, "0-held", "backoff")
        conn.commit()
        points = []
        for _ in range(3):
            with conn.transaction():
                conn.execute(CLAIM_SQL, {"keys": 5, "per_key": 1, "batch": 5, "max_bytes": 1})
            points.append(conn.execute("SHOW event_outbox.scan_from").fetchone()[0])
    # 2,000 keys a claim: "0-held" and k10000-k11998; k11999-k13998; k13999-k14999, round
    # through "0-held" to k10997
    assert points == ["k11998", "k13998", "k10997"]


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


def expected_claim(conn: psycopg.Connection, keys: int, per_key: int, batch: int) -> list[str]:
    """The claim's contract, computed here from the table (every row committed): heads oldest
    first (a key's lowest unpublished seq, due and unleased), each with its run of up to
    `per_key` rows stopping at a leased one, until `keys` heads or `batch` rows."""
    pending = conn.execute(
        "SELECT id, ordering_key, next_attempt_at <= now(),"
        " coalesce(lease_expires_at >= now(), false)"
        " FROM event_outbox WHERE NOT published ORDER BY seq"
    ).fetchall()
    by_key: dict[str, list[tuple[str, bool, bool]]] = {}
    for row_id, key, due, leased in pending:
        by_key.setdefault(key, []).append((row_id, due, leased))
    heads = [rows for rows in by_key.values() if rows[0][1] and not rows[0][2]]  # seq order
    taken: list[str] = []
    for started, rows in enumerate(heads, start=1):
        for row_id, _due, leased in rows[:per_key]:
            if leased:
                break
            taken.append(row_id)
            if len(taken) == batch:
                return taken
        if started == keys:
            break
    return taken


def test_random_backlogs_claim_exactly_what_the_contract_says(outbox_db: str) -> None:
    """Interleaved runs, heads in backoff or leased, leased rows inside runs; fewer keys than
    one scan visits, so the claim must equal the contract whichever pass finds a head."""
    shuffle = random.Random(24)
    with psycopg.connect(outbox_db) as conn:
        for key in range(300):  # runs of 1-12 rows, 2,000-ish rows in all
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
        for keys, per_key, batch in [(500, 100, 5000), (10, 3, 500), (200, 1, 50), (7, 100, 9),
                                     (250, 4, 5000)]:  # fmt: skip
            params = {"keys": keys, "per_key": per_key, "batch": batch, "max_bytes": 1 << 40}
            with conn.transaction(force_rollback=True):
                ids = [row[0] for row in conn.execute(CLAIM_SQL, params)]
            expected = expected_claim(conn, keys, per_key, batch)
            assert len(ids) == len(set(ids)) and len(expected) > 0
            assert sorted(ids) == sorted(expected), (keys, per_key, batch)


def test_only_the_relay_role_may_call_the_claim(outbox_db: str, writer_login: str) -> None:
    """Migration 0005 revokes EXECUTE from PUBLIC: a role with every table right the relay has,
    but not in the relay role, is refused the function itself, and so is a writer."""
    role = f"norelay_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(outbox_db, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
        admin.execute(f"GRANT SELECT, UPDATE ON event_outbox TO {role}")
    try:
        for user in (role, writer_login):
            with (
                psycopg.connect(outbox_db, user=user) as conn,
                pytest.raises(
                    psycopg.errors.InsufficientPrivilege,
                    match="permission denied for function event_outbox_claim",
                ),
            ):
                conn.execute(CLAIM_SQL, {"keys": 1, "per_key": 1, "batch": 1, "max_bytes": 1})
    finally:
        with psycopg.connect(outbox_db, autocommit=True) as admin:
            admin.execute(f"DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE {role}")


def test_two_claims_beyond_the_window_never_take_one_key(outbox_db: str) -> None:
    """The heads found key by key are locked too: a second relay claiming while the first's
    transaction is still open gets the other keys, none twice."""
    with psycopg.connect(outbox_db) as conn:
        conn.execute(RUN, ("held", 1200))
        conn.execute(FILL, ("k", 1, 40))
        stuck(conn, "held", "backoff")
        conn.commit()
    params = {"keys": 20, "per_key": 5, "batch": 500, "max_bytes": 1 << 40}
    with psycopg.connect(outbox_db) as first, psycopg.connect(outbox_db) as second:
        mine = [row[0] for row in first.execute(CLAIM_SQL, params)]  # transaction left open
        theirs = [row[0] for row in second.execute(CLAIM_SQL, {**params, "keys": 100})]
        keys = dict(
            first.execute(
                "SELECT id, ordering_key FROM event_outbox WHERE id = ANY(%s)", (mine + theirs,)
            ).fetchall()
        )
    assert len(mine) == 20 and len(theirs) == 20
    assert not {keys[i] for i in mine} & {keys[i] for i in theirs}
