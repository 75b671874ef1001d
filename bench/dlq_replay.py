"""Replay throughput and memory through the strict proxy, against two baselines in the same run.

  replay     eventsctl's replay operation as `dlq replay --yes` runs it (selection, dedupe,
             poison and source checks, attribute rewrite, undo journal fsynced before each ack,
             ack only after each confirmed publish), given the backlog count as Cloud
             Monitoring reports it on GCP; "replay, no count" is the same without it, as on
             the emulator, where the scan ends by its quiet rule (>= 1.5 s of pulls that bring
             nothing new)
  raw        pull a batch, publish it, wait, ack it; same client, no checks
  pipelined  the ceiling: a puller thread keeps batches coming while the main thread
             publishes them and an acker thread acknowledges each confirmed batch (no checks);
             raw and pipelined stop as soon as they have moved the seeded count
  naive      publish one message, wait for it, ack it, next (measured on --naive-count messages)

Goals (issue 12): replay >= 5,000 messages/s at 20,000 dead letters and >= 60 % of the
pipelined ceiling, >= 20x naive; replay's peak RSS at --large (200,000) dead letters <= 1.5x
that at --count (20,000). Each run happens in a fresh child process so its peak RSS is its own;
the --count runs are repeated --rounds times, interleaved, and the median of each is compared.

    python bench/dlq_replay.py [--count 20000] [--large 200000] [--naive-count 1000] [--rounds 3]
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

BATCH = 500  # the replay's own pull size (ReplayOptions.batch_size)
PULL_TIMEOUT = 0.5  # what eventsctl uses against the emulator (DlqContext)


def seed(project: str, count: int) -> tuple[str, str]:
    """A fresh project with an events topic, a DLQ topic + subscription and `count` dead
    letters shaped as Pub/Sub dead-letters them; a capture subscription on the events topic."""
    from google.cloud import pubsub_v1

    from events_infra.dlq import messages

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


def run_replay(project: str, backlog: int | None) -> tuple[int, dict]:
    """The replay operation as `eventsctl dlq replay --yes` runs it: the stack's sources, an
    undo journal written (and fsynced) before every ack, the CLI's emulator pull timeout, and
    the backlog count — on GCP Cloud Monitoring's figure (None: no count, as on the emulator,
    so the scan ends by its quiet rule)."""
    import tempfile

    from events_infra.dlq.clients import publisher_client, subscriber_client
    from events_infra.dlq.journal import Journal
    from events_infra.dlq.replay import ReplayOptions, replay
    from events_infra.dlq.target import DlqTarget

    target = DlqTarget("bench", project, "events", "events-dlq-sub", ("orders-sub",), 100)
    with tempfile.TemporaryDirectory() as scratch:
        journal = Journal(Path(scratch) / "undo.jsonl")
        summary = replay(
            publisher_client(),
            subscriber_client(),
            target,
            ReplayOptions(
                known_sources=frozenset({"orders-sub"}),
                journal=journal,
                expected=backlog,
                pull_timeout=PULL_TIMEOUT,
            ),
        )
        journal.close()
    return len(summary.replayed), {
        **summary.counts(),
        "possibly_remaining": summary.possibly_remaining,
    }


def publish_batch(api: object, topic: str, batch: list) -> None:
    """One Publish request for a pulled batch (no ordering keys in the seed), built from the
    raw protobuf as replay builds its own; no checks, no attribute rewrite."""
    from google.pubsub_v1.types import PublishRequest, PubsubMessage

    message = PubsubMessage.pb()
    request = PublishRequest.pb()(
        topic=topic,
        messages=[message(data=m._pb.message.data, attributes=m._pb.message.attributes)
                  for m in batch],
    )  # fmt: skip
    api.publish(request=PublishRequest.wrap(request), timeout=20)  # type: ignore[attr-defined]


def pull_batch(subscriber: object, sub: str) -> list:
    from google.api_core.exceptions import DeadlineExceeded

    try:
        response = subscriber.pull(  # type: ignore[attr-defined]
            subscription=sub, max_messages=BATCH, timeout=PULL_TIMEOUT
        )
    except DeadlineExceeded:
        return []
    return list(response.received_messages)


def run_raw(project: str, count: int) -> int:
    """Pull, publish, ack, one after the other; stops once it has moved the seeded count."""
    from events_infra.dlq.clients import subscriber_client
    from events_infra.pubsub.key_publisher import make_publisher

    api, subscriber = make_publisher(), subscriber_client()
    topic = f"projects/{project}/topics/events"
    sub = f"projects/{project}/subscriptions/events-dlq-sub"
    done = empty = 0
    while empty < 2 and done < count:  # the ceiling knows exactly how many there are
        batch = pull_batch(subscriber, sub)
        if not batch:
            empty += 1
            continue
        publish_batch(api, topic, batch)
        subscriber.acknowledge(subscription=sub, ack_ids=[m.ack_id for m in batch])
        done += len(batch)
    return done


def run_pipelined(project: str, count: int) -> int:
    """Pull ahead, publish, ack behind: three stages overlapping, bounded by two queues."""
    import queue
    import threading

    from events_infra.dlq.clients import subscriber_client
    from events_infra.pubsub.key_publisher import make_publisher

    api, subscriber = make_publisher(), subscriber_client()
    topic = f"projects/{project}/topics/events"
    sub = f"projects/{project}/subscriptions/events-dlq-sub"
    pulled: queue.Queue = queue.Queue(maxsize=2)
    confirmed: queue.Queue = queue.Queue(maxsize=4)

    def pull() -> None:
        empty = pulled_count = 0
        while empty < 2 and pulled_count < count:  # knows exactly how many there are
            batch = pull_batch(subscriber, sub)
            empty = 0 if batch else empty + 1
            pulled_count += len(batch)
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
        publish_batch(api, topic, batch)
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


def child(kind: str, project: str, count: int) -> None:
    """Time one pipeline on a project seeded with `count` letters; print JSON (rate and own
    peak RSS)."""
    started = time.perf_counter()
    detail: dict = {}
    if kind == "replay":
        moved, detail = run_replay(project, backlog=count)
    elif kind == "replay-uncounted":
        moved, detail = run_replay(project, backlog=None)
    elif kind == "raw":
        moved = run_raw(project, count)
    elif kind == "pipelined":
        moved = run_pipelined(project, count)
    else:
        moved = run_naive(project, count)
    seconds = time.perf_counter() - started
    peak_kib = peak_rss_kib()
    print(
        json.dumps(
            {"kind": kind, "count": moved, "seconds": seconds, "peak_kib": peak_kib, **detail}
        )
    )


def peak_rss_kib() -> int:
    """This process's own peak RSS (VmHWM). Not ru_maxrss: on Linux that survives fork+exec,
    so a child would report its parent's peak (the seeding) instead of its own."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure(kind: str, count: int, emulator: str) -> dict:
    """Seed a fresh project here, run the pipeline in a child process of its own, then delete
    the project's topics and subscriptions (so the emulator does not carry earlier runs'
    messages into later ones)."""
    project = f"bench-{uuid.uuid4().hex[:10]}"
    seed(project, count)
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", kind, "--project", project,
             "--count", str(count)],
            env={**os.environ, "PUBSUB_EMULATOR_HOST": emulator},
            capture_output=True, text=True, check=True, cwd=ROOT,
        )  # fmt: skip
    finally:
        remove(project)
    return json.loads(out.stdout.strip().splitlines()[-1])


def remove(project: str) -> None:
    from google.cloud import pubsub_v1

    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    for sub in subscriber.list_subscriptions(project=f"projects/{project}"):
        subscriber.delete_subscription(subscription=sub.name)
    for topic in publisher.list_topics(project=f"projects/{project}"):
        publisher.delete_topic(topic=topic.name)


def rate(run: dict) -> float:
    return run["count"] / run["seconds"]


def median(runs: list[dict]) -> dict:
    return sorted(runs, key=rate)[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--large", type=int, default=200_000)
    parser.add_argument("--naive-count", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--child",
        choices=["replay", "replay-uncounted", "raw", "pipelined", "naive"],
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--project", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.project, args.count)
        return

    from events_infra.local.strict_proxy import strict_pubsub

    kinds = ("raw", "pipelined", "replay", "replay-uncounted")
    rounds: dict[str, list[dict]] = {kind: [] for kind in kinds}
    with strict_pubsub(project="bench") as pubsub:  # production's rules on every call
        for _ in range(args.rounds):  # interleaved, so a slow spell of the emulator hits all
            for kind in kinds:
                rounds[kind].append(measure(kind, args.count, pubsub))
        large = measure("replay", args.large, pubsub)
        naive = measure("naive", args.naive_count, pubsub)
    raw, pipelined, ours, uncounted = (median(rounds[kind]) for kind in kinds)

    print(f"median of {args.rounds} interleaved rounds at {args.count}; one run at {args.large}")
    print(f"{'pipeline':<17} {'messages':>9} {'seconds':>8} {'msg/s':>8} {'peak RSS MiB':>12}"
          "  all rounds (msg/s)")  # fmt: skip
    runs = (("raw", raw, "raw"), ("pipelined", pipelined, "pipelined"),
            ("replay", ours, "replay"), ("replay, no count", uncounted, "replay-uncounted"),
            ("replay", large, None), ("naive", naive, None))  # fmt: skip
    for label, run, kind in runs:
        spread = " ".join(f"{rate(r):.0f}" for r in rounds[kind]) if kind else ""
        print(
            f"{label:<17} {run['count']:>9} {run['seconds']:>8.2f} {rate(run):>8.0f} "
            f"{run['peak_kib'] / 1024:>12.1f}  {spread}"
        )
    for label, run, _ in runs:
        if run.get("possibly_remaining") or run.get("acked_too_late") or run.get("failed"):
            print(f"{label}: not everything moved: {json.dumps(run)}")
    growth = large["peak_kib"] / ours["peak_kib"]
    print(
        f"replay {rate(ours):.0f} msg/s (goal >= 5000); "
        f"replay / pipelined = {rate(ours) / rate(pipelined):.0%} (goal >= 60%); "
        f"replay / raw = {rate(ours) / rate(raw):.0%}; "
        f"without a backlog count {rate(uncounted):.0f} msg/s; "
        f"replay / naive = {rate(ours) / rate(naive):.1f}x (goal >= 20x); "
        f"peak RSS {args.large} vs {args.count}: {growth:.2f}x (goal <= 1.5x)"
    )


if __name__ == "__main__":
    main()
