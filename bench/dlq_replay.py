"""Replay throughput and memory through the strict proxy, against two baselines in the same run.

  replay     eventsctl's replay operation (selection, dedupe, poison check, attribute rewrite,
             ack only after each confirmed publish)
  raw        pull a batch, publish it, wait, ack it; same client, no checks
  pipelined  the ceiling: a puller thread keeps batches coming while the main thread
             publishes them and an acker thread acknowledges each confirmed batch (no checks)
  naive      publish one message, wait for it, ack it, next (measured on --naive-count messages)

Goals (issue 12): replay >= 5,000 messages/s at 20,000 dead letters and >= 60 % of the
pipelined ceiling, >= 20x naive; replay's peak RSS at --large (200,000) dead letters <= 1.5x
that at --count (20,000). Each run happens in a fresh child process so its peak RSS is its own.

    python bench/dlq_replay.py [--count 20000] [--large 200000] [--naive-count 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BATCH = 500


def seed(project: str, count: int) -> tuple[str, str]:
    """A fresh project with an events topic, a DLQ topic + subscription and `count` dead
    letters shaped as Pub/Sub dead-letters them; a capture subscription on the events topic."""
    from google.cloud import pubsub_v1

    from dlq import messages

    publisher = pubsub_v1.PublisherClient(
        batch_settings=pubsub_v1.types.BatchSettings(max_messages=1000, max_latency=0.05)
    )
    subscriber = pubsub_v1.SubscriberClient()
    topic = f"projects/{project}/topics/events"
    dlq_topic = f"projects/{project}/topics/events-dlq"
    dlq_sub = f"projects/{project}/subscriptions/events-dlq-sub"
    publisher.create_topic(name=topic)
    publisher.create_topic(name=dlq_topic)
    subscriber.create_subscription(
        request={"name": dlq_sub, "topic": dlq_topic, "ack_deadline_seconds": 60}
    )
    subscriber.create_subscription(
        request={"name": f"projects/{project}/subscriptions/capture", "topic": topic}
    )
    futures = []
    for i in range(count):
        attrs = {
            messages.SOURCE_SUBSCRIPTION: "orders-sub",
            messages.SOURCE_PROJECT: project,
            messages.DELIVERY_COUNT: "5",
            messages.ORIGINAL_PUBLISH_TIME: "2026-11-29T10:00:00.000Z",
            "event_id": str(uuid.uuid4()),
            "event_type": "trade.created",
        }
        payload = json.dumps({"trade_id": i, "quantity": i % 97, "note": "x" * 200}).encode()
        futures.append(publisher.publish(dlq_topic, payload, **attrs))
    for future in futures:
        future.result(timeout=120)
    return topic, dlq_sub


def run_replay(project: str) -> int:
    from dlq.clients import publisher_client, subscriber_client
    from dlq.replay import ReplayOptions, replay
    from dlq.target import DlqTarget

    target = DlqTarget("bench", project, "events", "events-dlq-sub", ("orders-sub",), 100)
    summary = replay(
        publisher_client(),
        subscriber_client(),
        target,
        ReplayOptions(batch_size=BATCH, pull_timeout=1.0),
    )
    return len(summary.replayed)


def run_raw(project: str) -> int:
    from google.api_core.exceptions import DeadlineExceeded
    from google.cloud import pubsub_v1

    from dlq.clients import subscriber_client

    publisher, subscriber = pubsub_v1.PublisherClient(), subscriber_client()
    topic = f"projects/{project}/topics/events"
    sub = f"projects/{project}/subscriptions/events-dlq-sub"
    done = empty = 0
    while empty < 2:
        try:
            received = subscriber.pull(subscription=sub, max_messages=BATCH, timeout=1.0)
        except DeadlineExceeded:
            empty += 1
            continue
        batch = list(received.received_messages)
        if not batch:
            empty += 1
            continue
        futures = [publisher.publish(topic, m.message.data, **m.message.attributes) for m in batch]
        for future in futures:
            future.result()
        subscriber.acknowledge(subscription=sub, ack_ids=[m.ack_id for m in batch])
        done += len(batch)
    return done


def run_pipelined(project: str) -> int:
    """Pull ahead, publish, ack behind: three stages overlapping, bounded by two queues."""
    import queue
    import threading

    from google.api_core.exceptions import DeadlineExceeded
    from google.cloud import pubsub_v1

    from dlq.clients import subscriber_client

    publisher, subscriber = pubsub_v1.PublisherClient(), subscriber_client()
    topic = f"projects/{project}/topics/events"
    sub = f"projects/{project}/subscriptions/events-dlq-sub"
    pulled: queue.Queue = queue.Queue(maxsize=4)
    confirmed: queue.Queue = queue.Queue(maxsize=4)

    def pull() -> None:
        empty = 0
        while empty < 2:
            try:
                batch = list(
                    subscriber.pull(
                        subscription=sub, max_messages=BATCH, timeout=1.0
                    ).received_messages
                )
            except DeadlineExceeded:
                batch = []
            empty = 0 if batch else empty + 1
            if batch:
                pulled.put(batch)
        pulled.put(None)

    def ack() -> None:
        while (ack_ids := confirmed.get()) is not None:
            subscriber.acknowledge(subscription=sub, ack_ids=ack_ids)

    threads = [threading.Thread(target=pull), threading.Thread(target=ack)]
    for thread in threads:
        thread.start()
    done = 0
    while (batch := pulled.get()) is not None:
        futures = [publisher.publish(topic, m.message.data, **m.message.attributes) for m in batch]
        for future in futures:
            future.result()
        confirmed.put([m.ack_id for m in batch])
        done += len(batch)
    confirmed.put(None)
    for thread in threads:
        thread.join()
    return done


def run_naive(project: str, limit: int) -> int:
    from google.cloud import pubsub_v1

    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic = f"projects/{project}/topics/events"
    sub = f"projects/{project}/subscriptions/events-dlq-sub"
    done = 0
    while done < limit:
        received = subscriber.pull(subscription=sub, max_messages=1, timeout=5.0)
        for m in received.received_messages:
            publisher.publish(topic, m.message.data, **m.message.attributes).result()
            subscriber.acknowledge(subscription=sub, ack_ids=[m.ack_id])
            done += 1
    return done


def child(kind: str, project: str, naive_count: int) -> None:
    """Time one pipeline on an already seeded project; print JSON (rate and own peak RSS)."""
    started = time.perf_counter()
    if kind == "replay":
        moved = run_replay(project)
    elif kind == "raw":
        moved = run_raw(project)
    elif kind == "pipelined":
        moved = run_pipelined(project)
    else:
        moved = run_naive(project, naive_count)
    seconds = time.perf_counter() - started
    peak_kib = peak_rss_kib()
    print(json.dumps({"kind": kind, "count": moved, "seconds": seconds, "peak_kib": peak_kib}))


def peak_rss_kib() -> int:
    """This process's own peak RSS (VmHWM). Not ru_maxrss: on Linux that survives fork+exec,
    so a child would report its parent's peak (the seeding) instead of its own."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure(kind: str, count: int, naive_count: int, emulator: str) -> dict:
    """Seed a fresh project here, then run the pipeline in a child process of its own."""
    project = f"bench-{uuid.uuid4().hex[:10]}"
    seed(project, count)
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--project", project,
         "--naive-count", str(naive_count)],
        env={**os.environ, "PUBSUB_EMULATOR_HOST": emulator},
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--large", type=int, default=200_000)
    parser.add_argument("--naive-count", type=int, default=1_000)
    parser.add_argument(
        "--child", choices=["replay", "raw", "pipelined", "naive"], help=argparse.SUPPRESS
    )
    parser.add_argument("--project", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.project, args.naive_count)
        return

    from cli.local.strict_proxy import strict_pubsub

    with strict_pubsub(project="bench") as pubsub:  # production's rules on every call
        raw = measure("raw", args.count, 0, pubsub)
        pipelined = measure("pipelined", args.count, 0, pubsub)
        ours = measure("replay", args.count, 0, pubsub)
        large = measure("replay", args.large, 0, pubsub)
        naive = measure("naive", args.naive_count, args.naive_count, pubsub)

    def rate(run: dict) -> float:
        return run["count"] / run["seconds"]

    print(f"{'pipeline':<10} {'messages':>9} {'seconds':>8} {'msg/s':>8} {'peak RSS MiB':>12}")
    runs = (("raw", raw), ("pipelined", pipelined), ("replay", ours), ("replay", large),
            ("naive", naive))  # fmt: skip
    for label, run in runs:
        print(
            f"{label:<10} {run['count']:>9} {run['seconds']:>8.2f} {rate(run):>8.0f} "
            f"{run['peak_kib'] / 1024:>12.1f}"
        )
    growth = large["peak_kib"] / ours["peak_kib"]
    print(
        f"replay {rate(ours):.0f} msg/s (goal >= 5000); "
        f"replay / pipelined = {rate(ours) / rate(pipelined):.0%} (goal >= 60%); "
        f"replay / raw = {rate(ours) / rate(raw):.0%}; "
        f"replay / naive = {rate(ours) / rate(naive):.1f}x (goal >= 20x); "
        f"peak RSS {args.large} vs {args.count}: {growth:.2f}x (goal <= 1.5x)"
    )


if __name__ == "__main__":
    main()
