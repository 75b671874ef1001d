"""`eventsctl demo`: the whole backbone working on this machine, stage by stage.

Events leave the outbox through the relay; a real consumer process fails some of them; Pub/Sub
dead-letters those after the subscription's max delivery attempts; the DLQ alert condition trips;
the consumer is "fixed"; a targeted replay sends the dead letters back to the subscription that
failed them; the consumer processes them. Succeeds only if every event was processed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from events_infra.errors import EventsInfraError
from events_infra.local.stack import LocalState
from events_infra.pubsub.paths import subscription_path
from events_infra.stack_config.topology import StackConfig

MAX_STAGE_SECONDS = 120.0


class DemoError(EventsInfraError, RuntimeError):
    """A stage did not complete in time; the message says which and what was seen."""


@dataclass
class DemoResult:
    events: int = 0
    failing: int = 0
    published: int = 0
    processed_first_pass: int = 0
    dead_lettered: int = 0
    alert_threshold: float = 0
    alert_fired: bool = False
    replayed: int = 0
    processed: int = 0
    processed_after_replay: int = 0
    duplicate_effects: int = 0
    seconds: float = 0.0
    stages: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.processed == self.events
            and self.dead_lettered >= self.failing
            and self.duplicate_effects == 0
        )


def run_demo(
    state: LocalState,
    topology: StackConfig,
    say: Callable[[str], None],
    events: int | None = None,
) -> DemoResult:
    """Drive the scenario against the running local stack (see module docstring)."""
    import psycopg
    from google.cloud import pubsub_v1

    from events_infra.dlq.replay import ReplayOptions, replay
    from events_infra.dlq.status import dlq_status
    from events_infra.dlq.target import resolve
    from events_infra.outbox import Event, enqueue_many
    from events_infra.outbox.relay import Relay, RelayConfig, make_publisher

    started = time.monotonic()
    result = DemoResult(alert_threshold=topology.alerting.dlq_backlog.threshold)
    # enough failures to cross the alert threshold, as a real incident would
    result.failing = int(result.alert_threshold) + 20
    result.events = max(events or 0, result.failing + 180)
    sub = next((s for s in topology.subscriptions if not s.enable_message_ordering), None)
    if sub is None:
        raise DemoError("the demo needs a subscription without message ordering in the stack")
    subscription = subscription_path(topology.project, sub.name)
    target = resolve(state.stack, topology)
    subscriber = pubsub_v1.SubscriberClient()

    def stage(text: str) -> None:
        result.stages.append(text)
        say(text)

    _drain(subscriber, subscription)  # a previous demo's leftovers must not count
    _drain(subscriber, target.subscription_path)

    work = Path(tempfile.mkdtemp(prefix="eventsctl-demo-"))
    fixed_flag = work / "fixed.flag"
    consumer = subprocess.Popen(
        [sys.executable, "-m", "events_infra.local.demo_consumer", "--subscription", subscription,
         "--database-url", state.database_url, "--fixed", str(fixed_flag)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    relay = Relay(RelayConfig(state.database_url, target.topic_path, poll_interval=0.5),
                  make_publisher())  # fmt: skip
    relay_thread = threading.Thread(target=relay.run, daemon=True)
    relay_thread.start()
    try:
        stage(
            f"consumer (consumer library) started on {sub.name}: it fails events marked demo_fail=1"
        )
        ids = []
        with psycopg.connect(state.database_url) as conn:
            for start in range(0, result.events, 50):
                batch = [
                    Event(
                        "trade.created", "trade", uuid.uuid4(), {"trade": n},
                        attributes={"demo_fail": "1" if n < result.failing else "0"},
                    )
                    for n in range(start, min(start + 50, result.events))
                ]  # fmt: skip
                ids += enqueue_many(conn, batch)
                conn.commit()
        stage(f"outbox: {result.events} events committed ({result.failing} will fail)")

        def published() -> int:
            with psycopg.connect(state.database_url) as conn:
                rows = conn.execute(
                    "SELECT count(*) FROM event_outbox WHERE published AND id = ANY(%s)", (ids,)
                )
                return int(rows.fetchone()[0])

        result.published = _wait(lambda: published() == len(ids), published, "relay publishing")
        stage(f"relay: {result.published} events published to {topology.topic.name}")

        good = result.events - result.failing
        result.processed_first_pass = _wait(
            lambda: len(_processed(state.database_url)) >= good,
            lambda: len(_processed(state.database_url)),
            "consumer processing",
        )
        stage(f"consumer: {result.processed_first_pass} processed, {result.failing} failing")

        def dead_letters() -> int:
            row = dlq_status(subscriber, target, None, pull_timeout=0.5)
            return int(row["undelivered"])

        result.dead_lettered = _wait(
            lambda: dead_letters() >= result.failing, dead_letters, "dead-lettering"
        )
        attempts = sub.max_delivery_attempts
        stage(
            f"dead-lettered: {result.dead_lettered} events after {attempts} delivery attempts "
            f"each, now in {target.dead_letter_subscription}"
        )
        result.alert_fired = result.dead_lettered > result.alert_threshold
        verdict = "FIRING: on-call is paged" if result.alert_fired else "ok"
        stage(
            f"DLQ alert condition: {result.dead_lettered} undelivered > "
            f"{result.alert_threshold:g} → {verdict}"
        )

        fixed_flag.touch()
        stage("the consumer is fixed; replaying dead letters to the subscription that failed them")
        summary = replay(
            publisher_for_replay(), subscriber, target, ReplayOptions(pull_timeout=0.5)
        )
        result.replayed = len(summary.replayed)
        stage(f"replay: {result.replayed} replayed to {', '.join(summary.by_target) or '-'}")

        result.processed = _wait(
            lambda: len(_processed(state.database_url)) >= result.events,
            lambda: len(_processed(state.database_url)),
            "processing the replayed events",
        )
        processed = _processed(state.database_url)
        result.processed_after_replay = sum(1 for r in processed.values() if r["replayed"])
        result.duplicate_effects = sum(r["count"] - 1 for r in processed.values())
        remaining = dead_letters()
        stage(
            f"consumer: {result.processed}/{result.events} events processed "
            f"({result.processed_after_replay} after replay, {result.duplicate_effects} "
            f"processed twice); dead letters left: {remaining}"
        )
    finally:
        relay.stop()
        relay_thread.join(30)
        consumer.terminate()
        consumer.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    result.seconds = round(time.monotonic() - started, 1)
    return result


def publisher_for_replay() -> Any:
    from events_infra.dlq.clients import publisher_client

    return publisher_client()


def _processed(database_url: str) -> dict[str, dict[str, Any]]:
    """Event id -> {replayed, count}: what the demo consumer's handler committed (count > 1
    would be an event processed twice; the consumer library's dedupe prevents it)."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        exists = conn.execute("SELECT to_regclass('demo_processed')").fetchone()[0]
        if exists is None:
            return {}
        rows = conn.execute(
            "SELECT event_id::text, bool_or(replayed), count(*) FROM demo_processed GROUP BY 1"
        ).fetchall()
    return {event_id: {"replayed": replayed, "count": n} for event_id, replayed, n in rows}


def _wait(done: Callable[[], bool], value: Callable[[], int], what: str) -> int:
    deadline = time.monotonic() + MAX_STAGE_SECONDS
    while time.monotonic() < deadline:
        if done():
            return value()
        time.sleep(0.3)
    raise DemoError(f"{what} did not finish in {MAX_STAGE_SECONDS:.0f} s (reached {value()})")


def _drain(subscriber: Any, subscription: str) -> None:
    """Acknowledge whatever an earlier run left on `subscription`."""
    from google.api_core.exceptions import DeadlineExceeded

    for _ in range(100):
        try:
            batch = subscriber.pull(
                subscription=subscription, max_messages=1000, timeout=0.5
            ).received_messages
        except DeadlineExceeded:
            return
        if not batch:
            return
        subscriber.acknowledge(subscription=subscription, ack_ids=[m.ack_id for m in batch])
