"""Helpers for relay tests: a topic with a capture subscription on the emulator, relays in
threads or child processes, and a workload of concurrent writer transactions."""

from __future__ import annotations

import contextlib
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml
from google.api_core.exceptions import DeadlineExceeded
from google.cloud import pubsub_v1

from events_infra.outbox import Event, enqueue_many
from events_infra.outbox.relay import Relay, RelayConfig, make_publisher

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Bus:
    project: str
    topic: str
    capture: str
    subscriber: Any

    @classmethod
    def create(cls) -> Bus:
        project = f"relay-{uuid.uuid4().hex[:10]}"
        publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
        topic = f"projects/{project}/topics/events"
        capture = f"projects/{project}/subscriptions/capture"
        publisher.create_topic(name=topic)
        subscriber.create_subscription(
            request={"name": capture, "topic": topic, "ack_deadline_seconds": 60}
        )
        return cls(project, topic, capture, subscriber)

    def recreate(self) -> None:
        """After an emulator restart (its state is in memory): the topic and capture again."""
        publisher = pubsub_v1.PublisherClient()
        publisher.create_topic(name=self.topic)
        self.subscriber = pubsub_v1.SubscriberClient()
        self.subscriber.create_subscription(
            request={"name": self.capture, "topic": self.topic, "ack_deadline_seconds": 60}
        )

    def received(self, seconds: float = 3.0) -> list[Any]:
        """Drain the capture subscription until it is quiet for `seconds`."""
        got: list[Any] = []
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < seconds:
            try:
                batch = self.subscriber.pull(
                    subscription=self.capture, max_messages=1000, timeout=1.0
                ).received_messages
            except DeadlineExceeded:
                batch = []
            if batch:
                self.subscriber.acknowledge(
                    subscription=self.capture, ack_ids=[m.ack_id for m in batch]
                )
                got += batch
                quiet_since = time.monotonic()
        return got


class RelayThread:
    """A Relay running in a thread of this process (its own connections and publisher)."""

    def __init__(self, url: str, topic: str, **overrides: Any) -> None:
        overrides.setdefault("poll_interval", 0.2)
        overrides.setdefault("publish_timeout", 5.0)
        config = RelayConfig(database_url=url, topic_path=topic, **overrides)
        self.relay = Relay(config, make_publisher())
        self.thread = threading.Thread(target=self.relay.run, daemon=True)

    def __enter__(self) -> RelayThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.relay.stop()
        self.thread.join(30)


@contextlib.contextmanager
def relays(url: str, topic: str, count: int, **overrides: Any) -> Iterator[list[RelayThread]]:
    """`count` RelayThreads sharing one outbox, stopped (each in turn) on the way out."""
    with contextlib.ExitStack() as running:
        yield [running.enter_context(RelayThread(url, topic, **overrides)) for _ in range(count)]


def relay_process(url: str, tmp_path: Path, project: str, *flags: str) -> subprocess.Popen:
    """`eventsctl outbox relay` as a child process, configured by a stack file."""
    stacks = tmp_path / "relay-stacks"
    stacks.mkdir(exist_ok=True)
    (stacks / "Pulumi.relay.yaml").write_text(
        yaml.safe_dump(
            {
                "config": {
                    "gcp:project": project,
                    "events-infra:subscriptions": [{"name": "capture"}],
                }
            }
        )
    )
    command = [
        sys.executable, "-m", "events_infra.cli.app", "outbox", "relay", "--database-url", url,
        "--stack", "relay", "--stacks-dir", str(stacks), "--poll-interval", "0.2", *flags,
    ]  # fmt: skip
    return subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def backlog(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM event_outbox WHERE NOT published").fetchone()[0]


def wait_until(condition: Callable[[], bool], seconds: float = 60, step: float = 0.2) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


@dataclass
class Workload:
    """What concurrent writers committed and rolled back."""

    committed: list[uuid.UUID] = field(default_factory=list)
    rolled_back: list[uuid.UUID] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def write_concurrently(
    url: str,
    transactions: int,
    writers: int = 6,
    aggregates: int = 40,
    rollback_share: float = 0.1,
    slow_share: float = 0.1,
    seed: int = 7,
) -> Workload:
    """`writers` threads run `transactions` transactions in total, each enqueueing 1–3 events
    on random aggregates; some roll back, some sleep before committing (slow commits)."""
    work = Workload()
    per_writer = transactions // writers

    def writer(index: int) -> None:
        rng = random.Random(seed + index)
        with psycopg.connect(url) as conn:
            for _ in range(per_writer):
                batch = [
                    Event("trade.updated", "trade", uuid.UUID(int=rng.randrange(aggregates) + 1),
                          {"w": index})
                    for _ in range(rng.randint(1, 3))
                ]  # fmt: skip
                ids = enqueue_many(conn, batch)
                roll = rng.random()
                if roll < rollback_share:
                    conn.rollback()
                    with work.lock:
                        work.rolled_back += ids
                    continue
                if roll < rollback_share + slow_share:
                    time.sleep(rng.uniform(0.02, 0.1))
                conn.commit()
                with work.lock:
                    work.committed += ids

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    return work


def per_key_publish_order_ok(url: str) -> list[str]:
    """Keys whose Pub/Sub message ids (assigned in arrival order by the emulator) do not
    increase with `seq`: each is an event published before an earlier one of its key."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT ordering_key, array_agg(pubsub_message_id::bigint ORDER BY seq) "
            "FROM event_outbox WHERE published GROUP BY ordering_key"
        ).fetchall()
    return [key for key, ids in rows if ids != sorted(ids) or len(set(ids)) != len(ids)]
