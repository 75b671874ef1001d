"""The idempotent consumer library on the real emulator (through the strict proxy) and real
PostgreSQL: exactly-once effects on at-least-once delivery, ack after commit, retries and
dead-lettering as Pub/Sub does them, poison events, ordering, shutdown and kill -9."""

from __future__ import annotations

import json
import logging
import signal
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest

from events_infra.consumer import PoisonEvent, ReceivedEvent, cleanup_processed, log_metrics
from events_infra.dlq import messages
from tests.support.consumer_support import (
    ConsumerThread,
    consumer_process,
    effect_counts,
    effects,
    prepare_service_db,
    publish_events,
    record_effect,
)
from tests.support.dlq_support import DlqStack, make_stack
from tests.support.relay_support import wait_until

SUB = "orders-sub"


@pytest.fixture
def stack(pubsub: str, tmp_path: Path) -> DlqStack:
    return make_stack(tmp_path)


@pytest.fixture
def service_db(database_url: str) -> str:
    prepare_service_db(database_url)
    return database_url


def test_each_event_has_one_effect_and_duplicates_are_acked_unhandled(
    stack: DlqStack, service_db: str
) -> None:
    ids = publish_events(stack.publisher, stack.topic, 300)
    with ConsumerThread(stack.subscription(SUB), record_effect, service_db) as consumer:
        assert wait_until(lambda: len(effect_counts(service_db)) == 300, seconds=60)
        # the same events again, as a relay that crashed before settling would republish them
        publish_events_again(stack, ids[:50])
        assert wait_until(lambda: consumer.counts["duplicate"] == 50, seconds=30)
    counts = effect_counts(service_db)
    assert set(counts) == {uuid.UUID(i) for i in ids}
    assert set(counts.values()) == {1}
    assert consumer.counts["processed"] == 300
    assert stack.pull(stack.subscription(SUB), timeout=2.0) == []  # all acknowledged


def publish_events_again(stack: DlqStack, ids: list[str]) -> None:
    for event_id in ids:
        stack.publisher.publish(
            stack.topic, json.dumps({"n": -1}).encode(), event_id=event_id,
            event_type="trade.created", event_version="1", aggregate_type="trade",
            aggregate_id=str(uuid.uuid4()),
        ).result(timeout=30)  # fmt: skip


def test_a_handler_failing_every_time_ends_in_the_dlq_after_five_attempts(
    stack: DlqStack, service_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    [event_id] = publish_events(stack.publisher, stack.topic, 1)
    attempts: list[int | None] = []

    def always_fails(event: ReceivedEvent, conn: Any) -> None:
        record_effect(event, conn)  # rolled back with the failure
        attempts.append(event.delivery_attempt)
        raise RuntimeError("downstream said no")

    caplog.set_level(logging.WARNING, logger="events_infra.consumer")
    with ConsumerThread(stack.subscription(SUB), always_fails, service_db) as consumer:
        letters = stack.drain(stack.dlq_subscription, expected=1, seconds=60)
    assert [m.message.attributes["event_id"] for m in letters] == [event_id]
    assert letters[0].message.attributes[messages.DELIVERY_COUNT] == "5"
    assert attempts == [1, 2, 3, 4, 5]  # Pub/Sub's attempts, each seen once
    assert consumer.counts["retry"] == 5 and consumer.counts["processed"] == 0
    assert effects(service_db) == []  # the failed attempts' changes were rolled back
    lines = [json.loads(r.getMessage()) for r in caplog.records if "handler failed" in r.message]
    assert [(line["event_id"], line["delivery_attempt"]) for line in lines] == [
        (event_id, n) for n in range(1, 6)
    ]
    assert lines[0]["error"] == "RuntimeError: downstream said no"


def test_poison_and_undecodable_events_reach_the_dlq_through_pubsub_alone(
    stack: DlqStack, service_db: str, caplog: pytest.LogCaptureFixture, strict_proxy: Any
) -> None:
    """A poison event (and one that is no event at all) is nacked until Pub/Sub dead-letters it
    after max_delivery_attempts: the consumer publishes nothing (it holds no publish right on
    the DLQ, so no consumer can forge a letter there), the letter is Pub/Sub's own, with the
    source subscription Pub/Sub sets. A healthy event in the same stream is unaffected. The
    last delivery of each is logged as the JSON line the stack's log-based metric counts."""
    caplog.set_level(logging.WARNING, logger="events_infra.consumer")
    poison_id, healthy_id = publish_events(stack.publisher, stack.topic, 2)
    stack.publisher.publish(stack.topic, b"not from the outbox", key="x").result(timeout=30)
    published_before = strict_proxy.stats()["stats"].get("publish_requests", 0)
    seen: list[str] = []

    def handler(event: ReceivedEvent, conn: Any) -> None:
        seen.append(str(event.event_id))
        if str(event.event_id) == poison_id:
            raise PoisonEvent("trade references an unknown instrument")
        record_effect(event, conn)

    attempts = stack.topology.subscription(SUB).max_delivery_attempts
    with ConsumerThread(stack.subscription(SUB), handler, service_db) as consumer:
        letters = stack.drain(stack.dlq_subscription, expected=2, seconds=60)
        assert wait_until(lambda: len(effects(service_db)) == 1, seconds=20)
    assert strict_proxy.stats()["stats"].get("publish_requests", 0) == published_before
    by_event = {m.message.attributes.get("event_id"): m.message.attributes for m in letters}
    assert by_event[poison_id][messages.SOURCE_SUBSCRIPTION] == SUB  # set by Pub/Sub
    assert by_event[None]["key"] == "x"  # the undecodable one
    assert seen.count(poison_id) == attempts
    assert [row[0] for row in effects(service_db)] == [uuid.UUID(healthy_id)]
    assert consumer.counts["poison"] == 2 * attempts
    assert stack.pull(stack.subscription(SUB), timeout=2.0) == []
    lines = [json.loads(r.getMessage()) for r in caplog.records if "poison event" in r.message]
    counted = [line for line in lines if line["event"] == log_metrics.POISON_LOGGED]
    assert len(counted) == 2  # one per event: what consumer.log_metrics.log_filter() selects
    assert {line["subscription"] for line in counted} == {SUB}
    assert {line["delivery_attempt"] for line in counted} == {attempts}
    assert poison_id in {line.get("event_id") for line in counted}


def test_async_handlers_get_an_async_connection(stack: DlqStack, service_db: str) -> None:
    ids = publish_events(stack.publisher, stack.topic, 100)

    async def handler(event: ReceivedEvent, conn: psycopg.AsyncConnection) -> None:
        await conn.execute(
            "INSERT INTO effects (event_id, n) VALUES (%s, %s)",
            (event.event_id, event.payload["n"]),
        )

    with ConsumerThread(stack.subscription(SUB), handler, service_db) as consumer:
        assert wait_until(lambda: len(effect_counts(service_db)) == 100, seconds=60)
        publish_events_again(stack, ids[:10])
        assert wait_until(lambda: consumer.counts["duplicate"] == 10, seconds=30)
    assert set(effect_counts(service_db).values()) == {1}


def test_ordered_subscription_is_processed_in_key_order(pubsub: str, tmp_path: Path,
                                                        service_db: str) -> None:  # fmt: skip
    from google.cloud import pubsub_v1

    stack = make_stack(
        tmp_path,
        **{"events-infra:subscriptions": [{"name": SUB, "enable_message_ordering": True}]},
    )
    ordered = pubsub_v1.PublisherClient(
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
    )
    publish_events(ordered, stack.topic, 400, keys=8)
    with ConsumerThread(stack.subscription(SUB), record_effect, service_db, workers=4):
        assert wait_until(lambda: len(effects(service_db)) == 400, seconds=60)
    by_key: dict[str, list[int]] = {}
    for _, key, n, _, _ in effects(service_db):  # in commit order
        by_key.setdefault(key, []).append(n)
    assert len(by_key) == 8
    for numbers in by_key.values():
        assert numbers == sorted(numbers)


def test_flow_control_bounds_the_messages_held(stack: DlqStack, service_db: str) -> None:
    publish_events(stack.publisher, stack.topic, 200)

    def slow(event: ReceivedEvent, conn: Any) -> None:
        record_effect(event, conn)
        time.sleep(0.005)

    with ConsumerThread(
        stack.subscription(SUB), slow, service_db, max_messages=10, batch_size=5, workers=1
    ) as consumer:
        assert wait_until(lambda: len(effects(service_db)) == 200, seconds=90)
    assert 0 < consumer.max_held <= 10


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_stopping_the_consumer_mid_stream_loses_and_duplicates_nothing(
    stack: DlqStack, service_db: str, sig: signal.Signals
) -> None:
    """SIGTERM: finishes what it holds, gives the rest back once its streams have stopped, exits
    0. kill -9: committed but unacked events come back and are deduped. Either way a restart
    ends with one effect per event."""
    ids = publish_events(stack.publisher, stack.topic, 600)
    child = consumer_process(stack.subscription(SUB), service_db, delay_s=0.01)
    assert wait_until(lambda: len(effects(service_db)) >= 100, seconds=60)
    child.send_signal(sig)
    code = child.wait(30)
    if sig == signal.SIGTERM:
        assert code == 0, child.stderr.read()
        assert "consumer stopped" in child.stderr.read()
    assert len(effects(service_db)) < 600  # stopped mid-way
    attempts: list[int | None] = []

    def record(event: ReceivedEvent, conn: Any) -> None:
        record_effect(event, conn)
        attempts.append(event.delivery_attempt)

    with ConsumerThread(stack.subscription(SUB), record, service_db) as restarted:
        done = wait_until(lambda: len(effect_counts(service_db)) == 600, seconds=120)
        assert done, (  # if not: were the rest dead-lettered, or still leased somewhere?
            f"{len(effect_counts(service_db))} of 600 processed; restarted consumer "
            f"{dict(restarted.counts)}; {len(stack.peek_ids())} in the DLQ"
        )
    counts = effect_counts(service_db)
    assert set(counts) == {uuid.UUID(i) for i in ids}
    assert set(counts.values()) == {1}
    if sig == signal.SIGTERM:
        # each message the stopped consumer gave back was delivered to it once: nacks sent while
        # its other stream was still open would bounce there, each bounce a delivery attempt
        # (five dead-letter the event), and one landing in a closing stream stays leased
        assert attempts and max(a or 0 for a in attempts) == 2, Counter(attempts)


def test_kill_9_of_relay_and_consumer_and_a_dlq_replay_leave_one_effect_per_event(
    stack: DlqStack, service_db: str, outbox_db: str, tmp_path: Path
) -> None:
    """The real sources of duplicates, together: the relay killed mid-batch republishes what it
    had published but not settled; the consumer killed mid-stream gets back what it committed
    but had not acked; a replay resends a dead letter whose event was processed since."""
    from typer.testing import CliRunner

    from events_infra.cli.app import app
    from events_infra.outbox import Event, enqueue_many
    from tests.support.relay_support import RelayThread, backlog, relay_process

    with psycopg.connect(outbox_db) as conn:
        ids = enqueue_many(
            conn,
            [Event("trade.created", "trade", uuid.UUID(int=i % 300 + 1), {"n": i})
             for i in range(3000)],
        )  # fmt: skip
    consumer = consumer_process(stack.subscription(SUB), service_db, delay_s=0.002)
    relay = relay_process(outbox_db, tmp_path, stack.project, "--batch-size", "50", "--lease", "2")
    assert wait_until(lambda: backlog(outbox_db) <= 2700, seconds=60)
    relay.send_signal(signal.SIGKILL)
    relay.wait(10)
    assert wait_until(lambda: len(effects(service_db)) >= 100, seconds=60)
    consumer.send_signal(signal.SIGKILL)
    consumer.wait(10)
    assert backlog(outbox_db) > 0 and len(effects(service_db)) < 3000  # both died mid-way

    # one event's copy dead-lettered (as if a consumer had failed it five times) ...
    letter_id = str(ids[7])
    stack.seed(1, source=SUB, attributes={"event_id": letter_id, "event_type": "trade.created"})
    with (
        RelayThread(outbox_db, stack.topic, batch_size=500),
        ConsumerThread(stack.subscription(SUB), record_effect, service_db) as restarted,
    ):
        assert wait_until(lambda: len(effect_counts(service_db)) == 3000, seconds=120)
        assert wait_until(lambda: backlog(outbox_db) == 0, seconds=60)
        time.sleep(1.0)  # late redeliveries of the kills settle
        before = restarted.counts["duplicate"]
        # ... and replayed after the event was processed from its other copy
        result = CliRunner().invoke(
            app, ["dlq", "replay", *stack.cli_args(), "--yes", "--no-snapshot"]
        )
        assert result.exit_code == 0, result.output
        assert wait_until(lambda: restarted.counts["duplicate"] > before, seconds=30)
    assert stack.peek_ids() == set()  # the replayed copy was acknowledged, not re-dead-lettered
    assert [row[4] for row in effects(service_db) if str(row[0]) == letter_id] == [False]
    counts = effect_counts(service_db)
    assert set(counts) == set(ids)
    assert set(counts.values()) == {1}


def test_cleanup_removes_only_old_records_and_refuses_a_short_retention(service_db: str) -> None:
    with psycopg.connect(service_db) as conn:
        conn.execute(
            "INSERT INTO processed_events (consumer, event_id, processed_at)"
            " SELECT 'c', gen_random_uuid(), now() - make_interval(days => g, hours => 12)"
            " FROM generate_series(1, 40) g"
        )
        conn.commit()
        with pytest.raises(ValueError, match="at least 15 days"):
            cleanup_processed(conn, older_than_s=7 * 86400)
        removed = cleanup_processed(conn, older_than_s=30 * 86400, batch=3)
        [(left,)] = conn.execute("SELECT count(*) FROM processed_events").fetchall()
    assert (removed, left) == (11, 29)  # 30½ … 40½ days old


def test_consumer_migrate_and_cleanup_commands(database_url: str) -> None:
    from typer.testing import CliRunner

    from events_infra.cli.app import app

    runner = CliRunner()
    first = runner.invoke(app, ["consumer", "migrate", "--database-url", database_url])
    assert first.exit_code == 0, first.output
    assert "applied 0001_processed_events.sql" in first.stdout
    again = runner.invoke(app, ["consumer", "migrate", "--database-url", database_url, "--json"])
    assert json.loads(again.stdout)["already_applied"] == ["0001_processed_events.sql"]
    with psycopg.connect(database_url) as conn:  # its own history, apart from the outbox's
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables")}
    assert {"processed_events", "consumer_schema_migrations"} <= tables
    assert "outbox_schema_migrations" not in tables

    short = runner.invoke(
        app, ["consumer", "cleanup", "--database-url", database_url, "--older-than", "7d"]
    )
    assert short.exit_code == 2
    assert "at least 15 days" in short.output and len(short.output.strip().splitlines()) == 1
    ok = runner.invoke(app, ["consumer", "cleanup", "--database-url", database_url])
    assert (ok.exit_code, ok.stdout.strip()) == (0, "removed 0 records")


def test_what_cannot_work_is_one_clear_error_within_seconds(
    stack: DlqStack, service_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from events_infra.consumer import Consumer, ConsumerError

    def run(subscription: str, url: str) -> str:
        started = time.monotonic()
        with pytest.raises(ConsumerError) as err:
            Consumer(subscription, record_effect, url).run(handle_signals=False)
        assert time.monotonic() - started < 15
        return str(err.value)

    missing = stack.subscription("no-such-sub")
    assert run(missing, service_db) == f"subscription {missing} does not exist"
    unreachable = "host=127.0.0.1 port=1 dbname=x user=x connect_timeout=2"
    assert run(stack.subscription(SUB), unreachable).startswith(
        "cannot connect to the service database"
    )
    with pytest.raises(ConsumerError, match="projects/PROJECT/subscriptions/NAME"):
        Consumer("orders-sub", record_effect, service_db)

    monkeypatch.delenv("PUBSUB_EMULATOR_HOST")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    assert run(stack.subscription(SUB), service_db).startswith("no Google credentials")


def test_a_subscriber_only_identity_still_consumes_and_dead_letters_poison(
    stack: DlqStack, service_db: str, strict_proxy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """roles/pubsub.subscriber has no subscriptions.get: production answers GetSubscription
    with PERMISSION_DENIED (injected here). The consumer still runs, on one stream; poison is
    nacked as always and Pub/Sub applies the dead-letter policy it knows."""
    good, bad = publish_events(stack.publisher, stack.topic, 2)
    strict_proxy.fail("GetSubscription", "PERMISSION_DENIED", count=1)

    def handler(event: ReceivedEvent, conn: Any) -> None:
        if str(event.event_id) == bad:
            raise PoisonEvent("never valid")
        record_effect(event, conn)

    caplog.set_level(logging.WARNING, logger="events_infra.consumer")
    with ConsumerThread(stack.subscription(SUB), handler, service_db) as consumer:
        letters = stack.drain(stack.dlq_subscription, expected=1, seconds=60)
        assert wait_until(lambda: len(effects(service_db)) == 1, seconds=30)
    assert [m.message.attributes["event_id"] for m in letters] == [bad]
    assert [row[0] for row in effects(service_db)] == [uuid.UUID(good)]
    assert consumer.counts["processed"] == 1
    assert any("grant roles/pubsub.viewer" in r.getMessage() for r in caplog.records)
