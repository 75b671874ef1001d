"""How long `eventsctl subscription migrate` takes to move a backlog, beside `dlq replay` of the
same count in the same run, both through the strict proxy.

  migrate   OLD (unfiltered, like the ERP's events-sub) holds --count events published before
            NEW (replay filter) existed; the move as `subscription migrate --yes` runs it:
            copies targeted at NEW, journal fsynced before each ack, no backlog count (as on
            the emulator: the scan ends by its quiet rule); OLD's own copies come back to it
            and are left there (a later seek must not drop them from NEW)
  seek      `subscription migrate --by seek` (`auto` where copies would reach someone): snapshot
            NEW (undo point), snapshot OLD, seek NEW to it; nothing is published. NEW exists
            before the --count events here (the emulator hands NEW, on a seek, only what NEW
            already held) and its consumer has acknowledged them all, OLD's none: after the
            seek NEW holds them again (counted, untimed)
  replay    the same count of dead letters replayed as `dlq replay --yes` runs it, no count

    python bench/subscription_migrate.py [--count 10000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dlq_replay import remove, run_replay, seed  # the replay bench's own setup

NEW_FILTER = 'NOT attributes:replay_target OR attributes.replay_target = "new"'


def seed_old(project: str, count: int, new_first: bool = False) -> None:
    """events topic, unfiltered OLD with `count` events, then NEW with the replay filter (or
    NEW first, for the seek)."""
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient(
        batch_settings=pubsub_v1.types.BatchSettings(max_messages=1000, max_latency=0.05)
    )
    subscriber = pubsub_v1.SubscriberClient()
    topic = f"projects/{project}/topics/events"
    publisher.create_topic(name=topic)
    subscriber.create_subscription(
        request={"name": f"projects/{project}/subscriptions/old", "topic": topic,
                 "ack_deadline_seconds": 60}
    )  # fmt: skip
    new = {"name": f"projects/{project}/subscriptions/new", "topic": topic, "filter": NEW_FILTER}
    if new_first:
        subscriber.create_subscription(request=new)
    futures = []
    for i in range(count):
        payload = json.dumps({"trade_id": i, "quantity": i % 97, "note": "x" * 200}).encode()
        futures.append(
            publisher.publish(topic, payload, event_id=str(uuid.uuid4()), event_type="trade")
        )
    for future in futures:
        future.result(timeout=120)
    if not new_first:
        subscriber.create_subscription(request=new)


def drain(project: str, subscription: str) -> int:
    """Pull and acknowledge everything `subscription` holds; how many."""
    from google.api_core.exceptions import DeadlineExceeded
    from google.cloud import pubsub_v1

    subscriber, count, quiet = pubsub_v1.SubscriberClient(), 0, 0
    path = f"projects/{project}/subscriptions/{subscription}"
    while quiet < 2:
        try:
            got = subscriber.pull(subscription=path, max_messages=1000, timeout=2).received_messages
        except DeadlineExceeded:
            got = []
        quiet = 0 if got else quiet + 1
        if got:
            subscriber.acknowledge(subscription=path, ack_ids=[m.ack_id for m in got])
            count += len(got)
    return count


def run_seek(project: str) -> tuple[int, float]:
    from events_infra.dlq.clients import subscriber_client
    from events_infra.dlq.handover import seek_new, snapshot_old
    from events_infra.dlq.target import DlqTarget

    drain(project, "new")  # NEW's consumer is done with everything; OLD's with nothing
    target = DlqTarget("bench", project, "events", "old", (), 100)
    started = time.perf_counter()
    subscriber = subscriber_client()
    seek_new(subscriber, target, "new", snapshot_old(subscriber, target, "old"), undo=True)
    seconds = time.perf_counter() - started
    return drain(project, "new"), seconds


def run_migrate(project: str) -> tuple[int, float, dict]:
    from events_infra.dlq.clients import publisher_client, subscriber_client
    from events_infra.dlq.journal import Journal
    from events_infra.dlq.migrate import MigrateOptions, migrate
    from events_infra.pubsub.filters import parse

    with tempfile.TemporaryDirectory() as scratch:
        journal = Journal(Path(scratch) / "moved.jsonl")
        options = MigrateOptions(
            old="old",
            old_path=f"projects/{project}/subscriptions/old",
            new="new",
            new_topic_path=f"projects/{project}/topics/events",
            cutoff=datetime.now(UTC),
            new_filter=parse(NEW_FILTER),
            journal=journal,
            pull_timeout=0.5,
        )
        started = time.perf_counter()
        summary = migrate(publisher_client(), subscriber_client(), options)
        seconds = time.perf_counter() - started
        journal.close()
    return len(summary.moved), seconds, summary.counts()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    from events_infra.local.strict_proxy import strict_pubsub

    results: dict[str, list[tuple[int, float]]] = {"migrate": [], "seek": [], "replay": []}
    with strict_pubsub(project="bench") as pubsub:
        os.environ["PUBSUB_EMULATOR_HOST"] = pubsub
        for _ in range(args.rounds):  # interleaved
            project = f"bench-{uuid.uuid4().hex[:10]}"
            seed_old(project, args.count)
            try:
                moved, seconds, counts = run_migrate(project)
            finally:
                remove(project)
            if moved != args.count:
                print(f"migrate moved {moved} of {args.count}: {counts}")
            results["migrate"].append((moved, seconds))
            project = f"bench-{uuid.uuid4().hex[:10]}"
            seed_old(project, args.count, new_first=True)
            try:
                results["seek"].append(run_seek(project))
            finally:
                remove(project)
            project = f"bench-{uuid.uuid4().hex[:10]}"
            seed(project, args.count)
            try:
                started = time.perf_counter()
                replayed, _ = run_replay(project, backlog=None)
                results["replay"].append((replayed, time.perf_counter() - started))
            finally:
                remove(project)
    print(f"{args.count} messages, {args.rounds} interleaved rounds, strict proxy, no count")
    print(f"{'operation':<10} {'moved':>7} {'seconds':>8} {'msg/s':>7}  all rounds (s)")
    for kind, runs in results.items():
        moved, seconds = sorted(runs, key=lambda r: r[1])[len(runs) // 2]
        spread = " ".join(f"{s:.2f}" for _, s in runs)
        print(f"{kind:<10} {moved:>7} {seconds:>8.2f} {moved / seconds:>7.0f}  {spread}")


if __name__ == "__main__":
    main()
