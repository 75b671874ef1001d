"""One claim's cost on a big backlog: the same row count over few (hot) keys against one key per
row, with no key leased and with some keys leased by another relay (as when relays share the
backlog, or one relay has runs in flight). Issue 24's backlog point: a hot-key backlog should
drain within 2x of the spread one (bench/backlog_drain.py measures the drain itself).

    python bench/claim_backlog.py [--rows 200000] [--hot-keys 1000] [--leased 700]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from bench.databases import fresh_database, postgres_server  # noqa: E402
from events_infra.outbox.queries import CLAIM_SQL, LEASE_SQL  # noqa: E402
from events_infra.outbox.schema import migrate  # noqa: E402

FILL = (
    "INSERT INTO event_outbox (event_type, aggregate_type, aggregate_id, ordering_key, payload)"
    " SELECT 'trade.created', 'trade', gen_random_uuid(), 'k' || (i %% %s),"
    " jsonb_build_object('i', i) FROM generate_series(1, %s) i"
)


def backlog(server: str, rows: int, keys: int) -> str:
    """A fresh outbox holding `rows` committed rows over `keys` keys, interleaved, analysed."""
    url = fresh_database(server, migrate)
    with psycopg.connect(url) as conn:
        conn.execute(FILL, (keys, rows))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE event_outbox")
    return url


def lease(url: str, keys: int) -> None:
    """Lease `keys` keys' heads to another relay, for an hour."""
    with psycopg.connect(url) as conn:
        params = {"batch": keys, "keys": keys, "per_key": 1, "max_bytes": 1 << 40}
        ids = [r[0] for r in conn.execute(CLAIM_SQL, params)]
        conn.execute(LEASE_SQL, ("another-relay", 3600, ids))


def claim_ms(url: str, per_key: int) -> tuple[float, int]:
    """Best of three claims (500 rows over up to 500 keys, up to `per_key` rows of each,
    rolled back); (ms, rows claimed)."""
    with psycopg.connect(url) as conn:
        best, claimed = float("inf"), 0
        for _ in range(3):
            started = time.perf_counter()
            params = {"batch": 500, "keys": 500, "per_key": per_key, "max_bytes": 1 << 40}
            claimed = len(conn.execute(CLAIM_SQL, params).fetchall())
            best = min(best, (time.perf_counter() - started) * 1000)
            conn.rollback()
        return best, claimed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--hot-keys", type=int, default=1000)
    parser.add_argument("--leased", type=int, default=700)
    args = parser.parse_args()
    print(f"one claim (500 rows, up to 500 keys) on {args.rows} committed rows")
    with postgres_server() as server:
        for keys in (args.rows, args.hot_keys):  # the spread backlog is the baseline
            url = backlog(server, args.rows, keys)
            for leased in (0, args.leased):
                if leased:  # after the runs with none leased, on the same backlog
                    lease(url, leased)
                for per_key in (100, 1):  # the relay's default; one row per key at most
                    ms, claimed = claim_ms(url, per_key)
                    print(f"  {keys:>8} keys, {leased:>4} leased elsewhere, per_key {per_key:>3}: "
                          f"{ms:8.1f} ms ({claimed} rows)")  # fmt: skip


if __name__ == "__main__":
    main()
