"""Consumer throughput with dedupe on real PostgreSQL, against a bare streaming-pull consumer.

Everything goes through the strict proxy in front of the real emulator (started here unless
PUBSUB_EMULATOR_HOST names one); the database is embedded PostgreSQL unless DATABASE_URL is set.
Each run gets a fresh subscription holding the same backlog of --events events (published first,
with the relay's attributes) and is timed from start until every event is acknowledged:

  bare            google-cloud-pubsub streaming pull, callback acks at once, no database, with
                  --streams streams (and with one: the emulator paces each stream)
  library         consumer.Consumer, no-op handler: processed_events dedupe in one transaction
                  per batch, ack after commit
  library+write   the same with a handler that inserts one row (a service's own change)

Goals (issue 14): library >= 2,000 events/s with one worker process and >= 50 % of bare.

    python bench/consumer_throughput.py [--events 20000] [--workers 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from google.cloud import pubsub_v1  # noqa: E402

from bench.databases import fresh_database, postgres_server  # noqa: E402
from events_infra.consumer import Consumer, ConsumerOptions, migrate_processed_events  # noqa: E402
from events_infra.local.strict_proxy import strict_pubsub  # noqa: E402


def prepare(conn: Any) -> None:
    migrate_processed_events(conn)
    conn.execute("CREATE TABLE positions (event_id uuid, n integer)")


def backlog(events: int) -> str:
    """A fresh topic and subscription holding `events` relay-shaped events; the subscription."""
    project = f"bench-{uuid.uuid4().hex[:10]}"
    topic = f"projects/{project}/topics/events"
    subscription = f"projects/{project}/subscriptions/service"
    publisher = pubsub_v1.PublisherClient(
        batch_settings=pubsub_v1.types.BatchSettings(max_messages=1000, max_latency=0.05)
    )
    publisher.create_topic(name=topic)
    pubsub_v1.SubscriberClient().create_subscription(
        request={"name": subscription, "topic": topic, "ack_deadline_seconds": 60}
    )
    futures = [
        publisher.publish(
            topic, json.dumps({"n": n}).encode(), event_id=str(uuid.uuid4()),
            event_type="trade.created", event_version="1", aggregate_type="trade",
            aggregate_id=str(uuid.uuid4()),
        )
        for n in range(events)
    ]  # fmt: skip
    for future in futures:
        future.result(timeout=60)
    return subscription


def bare(subscription: str, events: int, streams: int) -> float:
    done = threading.Event()
    lock = threading.Lock()
    count = 0

    def on_message(message: Any) -> None:
        nonlocal count
        message.ack()
        with lock:
            count += 1
            if count >= events:
                done.set()

    clients = [pubsub_v1.SubscriberClient() for _ in range(streams)]
    flow = pubsub_v1.types.FlowControl(max_messages=1000 // streams)
    started = time.perf_counter()
    futures = [c.subscribe(subscription, on_message, flow_control=flow) for c in clients]
    done.wait(600)
    elapsed = time.perf_counter() - started
    for future, client in zip(futures, clients, strict=True):
        future.cancel()
        with contextlib.suppress(Exception):
            future.result(timeout=30)
        client.close()
    return count / elapsed


def library(
    subscription: str, events: int, url: str, workers: int, streams: int, write: bool
) -> float:
    def handler(event: Any, conn: Any) -> None:
        if write:
            conn.execute(
                "INSERT INTO positions VALUES (%s, %s)", (event.event_id, event.payload["n"])
            )

    options = ConsumerOptions(workers=workers, streams=streams)
    consumer = Consumer(subscription, handler, url, options)
    thread = threading.Thread(target=consumer.run, kwargs={"handle_signals": False})
    started = time.perf_counter()
    thread.start()
    while consumer.counts["processed"] < events and thread.is_alive():
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    consumer.stop()
    thread.join(60)
    return consumer.counts["processed"] / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--streams", type=int, default=2)
    args = parser.parse_args()

    n, w, k = args.events, args.workers, args.streams
    with postgres_server() as server_url, strict_pubsub(project="bench"):
        results = {
            "bare 1 stream": bare(backlog(n), n, 1),
            "bare": bare(backlog(n), n, k),
            "library": library(backlog(n), n, fresh_database(server_url, prepare), w, k, False),
            "library+write": library(
                backlog(n), n, fresh_database(server_url, prepare), w, k, True
            ),
        }

    print(
        f"through the strict proxy; {n} events; {args.streams} streams "
        f"(bare and library); library workers {args.workers}"
    )
    print(f"{'run':<14} {'events/s':>9} {'vs bare':>8}")
    for name, rate in results.items():
        print(f"{name:<14} {rate:>9.0f} {rate / results['bare']:>8.0%}")
    lib = results["library"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    print(
        f"goals: library {lib:.0f} >= 2000/s ({verdict(lib >= 2000)}); "
        f"library/bare {lib / results['bare']:.0%} >= 50% ({verdict(lib >= results['bare'] / 2)})"
    )


if __name__ == "__main__":
    main()
