"""A big backlog drained by one relay (issue 24, point 4): the same row count over few hot keys
(long runs per key) against one key per row, and a sustained run with cleanup.

Drain: `--rows` committed rows (default 1,000,000) written with plain SQL, then one relay
(`eventsctl outbox relay`, a child process at its defaults) through the strict proxy at ~0 ms
per Publish; the rate is measured over `--sample` rows settled once the relay is up (one key
per row goes at a few hundred events a second, so a whole million would take most of an hour;
the rate over the sample is the steady one). Claim time is the relay's own: PostgreSQL's
per-function statistics for `event_outbox_claim` (`track_functions = pl`), mean over the drain.

Sustained: a writer commits `--write-rate` events a second on `--write-keys` keys for
`--seconds`, the relay publishes them, and `eventsctl outbox cleanup` deletes published rows
every 10 s; every 10 s the run prints the relay's mean claim time over the interval and the
table's dead tuples and live rows, so a claim that slows down as published rows pile up shows.

    python bench/backlog_drain.py [--rows 1000000] [--hot-keys 1000] [--sample 100000]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg.conninfo import conninfo_to_dict  # noqa: E402

from bench.claim_backlog import backlog  # noqa: E402
from bench.databases import fresh_database, postgres_server  # noqa: E402
from bench.relay_latency import RelayChildren, fresh_topic, settled  # noqa: E402
from events_infra.local.strict_proxy import strict_pubsub  # noqa: E402
from events_infra.outbox import Event, enqueue_many  # noqa: E402
from events_infra.outbox.cleanup import cleanup  # noqa: E402
from events_infra.outbox.schema import migrate  # noqa: E402


def keep_claim_times(server: str, url: str) -> str:
    """Have PostgreSQL keep the claim function's time on `url` (`pg_stat_user_functions`) for
    sessions opened from now on; `url`."""
    name = conninfo_to_dict(url)["dbname"]
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" SET track_functions = pl')
    return url


def claims(conn: psycopg.Connection) -> tuple[int, float]:
    """Claims so far and their total ms, as the statistics collector has them."""
    conn.execute("SELECT pg_stat_clear_snapshot()")
    row = conn.execute(
        "SELECT calls, total_time FROM pg_stat_user_functions WHERE funcname = 'event_outbox_claim'"
    ).fetchone()
    return (row[0], row[1]) if row else (0, 0.0)


def table_state(conn: psycopg.Connection) -> tuple[int, int]:
    """(dead tuples, live rows) of event_outbox, as autovacuum sees them."""
    conn.execute("SELECT pg_stat_clear_snapshot()")
    return conn.execute(
        "SELECT n_dead_tup, n_live_tup FROM pg_stat_user_tables WHERE relname = 'event_outbox'"
    ).fetchone()


def drain(server: str, rows: int, keys: int, sample: int) -> dict:
    url = keep_claim_times(server, backlog(server, rows, keys))  # committed, vacuumed, analysed
    topic = fresh_topic()
    with psycopg.connect(url, autocommit=True) as conn, RelayChildren(url, topic, 1):
        # the relay starts draining while it settles in: time from here, rows from here
        started, before, claims_before = time.perf_counter(), settled(url), claims(conn)
        while (done := settled(url)) < before + sample:
            time.sleep(0.1)
            if time.perf_counter() - started > 1800:
                raise SystemExit("bench: the relay did not drain the sample in 30 minutes")
        seconds = time.perf_counter() - started
        time.sleep(1.5)  # the relay's function statistics reach the collector within a second
        calls, total_ms = (a - b for a, b in zip(claims(conn), claims_before, strict=True))
    return {"rate": (done - before) / seconds, "claim_ms": total_ms / max(calls, 1),
            "calls": calls}  # fmt: skip


def sustained(server: str, rate: int, keys: int, seconds: int) -> None:
    """Write, relay and clean up at once; print claim time and table state every 10 s."""
    url, topic = keep_claim_times(server, fresh_database(server, migrate)), fresh_topic()
    stop = threading.Event()

    def write() -> None:
        with psycopg.connect(url) as conn:
            n = 0
            while not stop.is_set():
                tick = time.perf_counter()
                batch = [
                    Event("trade.created", "trade", uuid.UUID(int=(n + i) % keys + 1), {"n": n})
                    for i in range(rate // 10)
                ]
                enqueue_many(conn, batch)
                conn.commit()
                n += len(batch)
                stop.wait(max(0.0, 0.1 - (time.perf_counter() - tick)))

    def clean() -> None:
        with psycopg.connect(url) as conn:
            while not stop.wait(10):
                cleanup(conn, older_than_s=5)

    print(f"sustained: {rate} events/s on {keys} keys, cleanup of rows published 5 s ago "
          "every 10 s")  # fmt: skip
    print(f"{'s':>5} {'claims':>7} {'mean claim ms':>14} {'dead tuples':>12} {'live rows':>10} "
          f"{'backlog':>8}")  # fmt: skip
    with RelayChildren(url, topic, 1), psycopg.connect(url, autocommit=True) as conn:
        workers = [threading.Thread(target=f, daemon=True) for f in (write, clean)]
        for worker in workers:
            worker.start()
        before, started = claims(conn), time.perf_counter()
        for t in range(10, seconds + 1, 10):
            time.sleep(max(0.0, started + t - time.perf_counter()))
            now = claims(conn)
            calls, ms = now[0] - before[0], now[1] - before[1]
            before = now
            dead, live = table_state(conn)
            backlog = conn.execute(
                "SELECT count(*) FROM event_outbox WHERE NOT published"
            ).fetchone()[0]
            print(f"{t:>5} {calls:>7} {ms / max(calls, 1):>14.2f} {dead:>12} {live:>10} "
                  f"{backlog:>8}", flush=True)  # fmt: skip
        stop.set()
        for worker in workers:
            worker.join(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--hot-keys", type=int, default=1000)
    parser.add_argument("--sample", type=int, default=100_000)
    parser.add_argument("--write-rate", type=int, default=500)
    parser.add_argument("--write-keys", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--skip-drain", action="store_true")
    args = parser.parse_args()
    with postgres_server() as server, strict_pubsub(project="bench"):
        if not args.skip_drain:
            results = {}
            for keys in (args.rows, args.hot_keys):  # the spread backlog is the baseline
                results[keys] = r = drain(server, args.rows, keys, args.sample)
                print(f"{args.rows} rows over {keys} keys: {r['rate']:.0f} events/s over "
                      f"{args.sample} once the relay was up; mean claim "
                      f"{r['claim_ms']:.1f} ms over {r['calls']} claims", flush=True)  # fmt: skip
            spread, hot = results[args.rows]["rate"], results[args.hot_keys]["rate"]
            verdict = "met" if hot >= spread / 2 else "NOT met"
            print(f"goal: {args.hot_keys} hot keys drain at {hot / spread:.2f}x the rate of one "
                  f"key per row, >= 0.5x ({verdict})\n")  # fmt: skip
        sustained(server, args.write_rate, args.write_keys, args.seconds)


if __name__ == "__main__":
    main()
