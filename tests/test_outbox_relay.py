"""The outbox relay against real PostgreSQL (embedded) and the real Pub/Sub emulator."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from events_infra.cli.app import app
from events_infra.local.proxy.control import ProxyControl
from events_infra.outbox import Event, enqueue, enqueue_many
from events_infra.outbox.relay import Relay, RelayConfig, backoff_seconds, make_publisher
from events_infra.outbox.relay import log as relay_log
from tests.support.relay_support import (
    Bus,
    RelayThread,
    backlog,
    per_key_publish_order_ok,
    relay_process,
    relays,
    wait_until,
    write_concurrently,
)

runner = CliRunner()


@pytest.fixture
def bus(pubsub: str) -> Bus:
    return Bus.create()


def event(aggregate: int, n: int = 0, **kw: object) -> Event:
    return Event("trade.updated", "trade", uuid.UUID(int=aggregate), {"n": n}, **kw)  # type: ignore[arg-type]


def test_three_relays_keep_per_key_order_exactly_once(outbox_db: str, bus: Bus) -> None:
    with relays(outbox_db, bus.topic, 3, batch_size=100):
        work = write_concurrently(outbox_db, transactions=1500, writers=6, aggregates=40)
        assert wait_until(lambda: backlog(outbox_db) == 0, seconds=120)
    assert len(work.committed) > 2000 and work.rolled_back

    assert per_key_publish_order_ok(outbox_db) == []
    received = Counter(m.message.attributes["event_id"] for m in bus.received())
    committed = {str(i) for i in work.committed}
    assert set(received) == committed  # every committed event, nothing rolled back
    assert not committed & {str(i) for i in work.rolled_back}
    assert max(received.values()) == 1  # exactly once in the normal path


def test_slow_transaction_is_not_overtaken(outbox_db: str, bus: Bus) -> None:
    first_written = threading.Event()

    def slow() -> None:
        with psycopg.connect(outbox_db) as conn:
            enqueue(conn, event(1, n=1))
            first_written.set()
            time.sleep(1.0)  # commits late

    with RelayThread(outbox_db, bus.topic):
        thread = threading.Thread(target=slow)
        thread.start()
        assert first_written.wait(10)
        with psycopg.connect(outbox_db) as conn:  # waits for the slow one's key lock
            enqueue(conn, event(1, n=2))
        with psycopg.connect(outbox_db) as conn:
            enqueue(conn, event(2, n=3))  # another aggregate flows meanwhile
        thread.join(10)
        assert wait_until(lambda: backlog(outbox_db) == 0, seconds=30)
    order = [json.loads(m.message.data)["n"] for m in bus.received()
             if m.message.attributes["aggregate_id"] == str(uuid.UUID(int=1))]  # fmt: skip
    assert order == [1, 2]
    assert per_key_publish_order_ok(outbox_db) == []


def test_rolled_back_events_are_never_published(outbox_db: str, bus: Bus) -> None:
    with RelayThread(outbox_db, bus.topic):
        with psycopg.connect(outbox_db) as conn:
            doomed = enqueue(conn, event(5))
            time.sleep(0.5)  # the relay is polling while the row exists uncommitted
            conn.rollback()
            kept = enqueue(conn, event(6))
        assert wait_until(lambda: backlog(outbox_db) == 0, seconds=30)
    ids = {m.message.attributes["event_id"] for m in bus.received()}
    assert ids == {str(kept)} and str(doomed) not in ids


def test_message_carries_ordering_key_event_id_and_attributes(outbox_db: str, bus: Bus) -> None:
    with psycopg.connect(outbox_db) as conn:
        event_id = enqueue(conn, event(9, attributes={"region": "in"}))
    with RelayThread(outbox_db, bus.topic):
        assert wait_until(lambda: backlog(outbox_db) == 0, seconds=30)
    [message] = [m.message for m in bus.received()]
    assert message.ordering_key == f"trade:{uuid.UUID(int=9)}"
    assert dict(message.attributes) == {
        "region": "in",
        "event_id": str(event_id),
        "event_type": "trade.updated",
        "event_version": "1",
        "aggregate_type": "trade",
        "aggregate_id": str(uuid.UUID(int=9)),
    }
    assert json.loads(message.data) == {"n": 0}
    with psycopg.connect(outbox_db) as conn:
        row = conn.execute("SELECT published_at, pubsub_message_id, lease_owner FROM event_outbox")
        published_at, message_id, lease = row.fetchone()
    assert published_at is not None and message_id == message.message_id and lease is None


def test_notify_wakes_the_relay_before_its_poll_interval(outbox_db: str, bus: Bus) -> None:
    with RelayThread(outbox_db, bus.topic, poll_interval=30.0) as relay:
        time.sleep(0.5)  # let it go to sleep on LISTEN
        with psycopg.connect(outbox_db) as conn:
            enqueue(conn, event(3))
        assert wait_until(lambda: backlog(outbox_db) == 0, seconds=10)
        assert relay.thread.is_alive()


def test_kill_9_mid_batch_then_restart_loses_nothing(
    outbox_db: str, bus: Bus, tmp_path: Path
) -> None:
    with psycopg.connect(outbox_db) as conn:
        ids = {enqueue(conn, event(i % 500 + 1, n=i)) for i in range(6000)}
    child = relay_process(outbox_db, tmp_path, bus.project, "--batch-size", "50", "--lease", "2")

    def published() -> int:
        with psycopg.connect(outbox_db) as conn:
            return conn.execute("SELECT count(*) FROM event_outbox WHERE published").fetchone()[0]

    assert wait_until(lambda: published() >= 300, seconds=60)
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    assert 0 < backlog(outbox_db) < len(ids)  # killed mid-way, with rows still leased
    with RelayThread(outbox_db, bus.topic, batch_size=500):
        assert wait_until(lambda: backlog(outbox_db) == 0, seconds=120)
    received = {m.message.attributes["event_id"] for m in bus.received()}
    assert {str(i) for i in ids} <= received  # every event at least once


def test_sigterm_finishes_the_batch_and_exits_0(outbox_db: str, bus: Bus, tmp_path: Path) -> None:
    with psycopg.connect(outbox_db) as conn:
        for i in range(4000):
            enqueue(conn, event(i % 400 + 1, n=i))
    child = relay_process(outbox_db, tmp_path, bus.project, "--batch-size", "200")
    assert wait_until(lambda: backlog(outbox_db) < 4000, seconds=60)
    child.send_signal(signal.SIGTERM)
    assert child.wait(30) == 0
    assert "relay stopped after publishing" in child.stderr.read()
    with psycopg.connect(outbox_db) as conn:
        leased = conn.execute(
            "SELECT count(*) FROM event_outbox WHERE lease_owner IS NOT NULL"
        ).fetchone()[0]
        unsettled = conn.execute(
            "SELECT count(*) FROM event_outbox WHERE published AND pubsub_message_id IS NULL"
        ).fetchone()[0]
    assert (leased, unsettled) == (0, 0)  # nothing half-settled
    assert backlog(outbox_db) > 0  # it stopped early, as asked


def test_a_stop_waits_for_requests_on_the_wire_not_the_rest_of_the_batch(
    outbox_db: str, bus: Bus, strict_proxy: ProxyControl
) -> None:
    """Cloud Run kills 10 s after SIGTERM: keys of the batch not yet sent when the stop comes
    are released (no attempt spent) instead of being published one round after another."""
    with psycopg.connect(outbox_db) as conn:
        enqueue_many(conn, [event(k + 1, n=k) for k in range(40)])  # 40 keys, one batch
    strict_proxy.delay("Publish", 1.0, count=1000)  # every request takes a second
    relay = RelayThread(outbox_db, bus.topic, batch_size=100, publish_concurrency=4)
    with relay:
        assert wait_until(
            lambda: strict_proxy.stats()["stats"].get("delays_injected.Publish", 0) >= 1, 30
        )
        relay.relay.stop()
        relay.thread.join(30)
        assert not relay.thread.is_alive()
    sent = strict_proxy.stats()["stats"]["delays_injected.Publish"]
    assert sent <= 8  # the requests on the wire (4), not the 10 rounds the batch holds
    with psycopg.connect(outbox_db) as conn:
        rows = conn.execute(
            "SELECT count(*) FILTER (WHERE published), count(*) FILTER (WHERE lease_owner IS NOT"
            " NULL), max(retry_count) FROM event_outbox"
        ).fetchone()
    assert rows[0] == sent and rows[1:] == (0, 0)  # the rest released, no attempt spent
    strict_proxy.reset()
    with RelayThread(outbox_db, bus.topic):  # and the next relay publishes them
        assert wait_until(lambda: backlog(outbox_db) == 0, seconds=60)


def test_pubsub_outage_opens_the_breaker_and_nothing_is_lost(
    outbox_db: str, bus: Bus, strict_proxy: ProxyControl, caplog: pytest.LogCaptureFixture
) -> None:
    """Pub/Sub answers UNAVAILABLE to every publish (injected by the strict proxy, so the topic
    and the capture subscription stay in place): rows wait with their attempts unspent, the
    reason shows in `outbox status`, then all go out once it recovers."""
    relay = RelayThread(
        outbox_db, bus.topic, publish_timeout=1.0, breaker_failures=2, breaker_cooldown=1.0
    )
    caplog.set_level("INFO", logger=relay_log.name)
    with relay:
        with psycopg.connect(outbox_db) as conn:
            for i in range(20):
                enqueue(conn, event(i + 1))
        assert wait_until(lambda: backlog(outbox_db) == 0, seconds=30)
        strict_proxy.fail("Publish", "UNAVAILABLE", count=100_000)
        with psycopg.connect(outbox_db) as conn:
            later = [enqueue(conn, event(i + 100)) for i in range(30)]
        assert wait_until(lambda: relay.relay.breaker.current_state == "open", seconds=60)
        assert backlog(outbox_db) == 30
        with psycopg.connect(outbox_db) as conn:
            spent = conn.execute("SELECT max(retry_count) FROM event_outbox").fetchone()[0]
        assert spent == 0  # an outage does not use up the rows' attempts
        status = runner.invoke(app, ["outbox", "status", "--database-url", outbox_db, "--json"])
        assert "UNAVAILABLE" in json.loads(status.stdout)["last_error"]
        batch_lines = [json.loads(r.getMessage()) for r in caplog.records
                       if r.name == relay_log.name and '"batch"' in r.getMessage()]  # fmt: skip
        assert any("UNAVAILABLE" in line.get("error", "") for line in batch_lines)
        strict_proxy.reset()
        assert wait_until(lambda: backlog(outbox_db) == 0, seconds=90)
    received = {m.message.attributes["event_id"] for m in bus.received()}
    assert {str(i) for i in later} <= received


def test_permanently_failing_row_does_not_block_other_keys(outbox_db: str, bus: Bus) -> None:
    """An oversize row the database no longer accepts (migration 0004) but may still hold from
    before it: written here with the check switched off, as it was then."""
    huge = (
        "INSERT INTO event_outbox (event_type, aggregate_type, aggregate_id, ordering_key,"
        " payload) VALUES ('huge', 'trade', gen_random_uuid(), 'trade:huge',"
        " jsonb_build_object('blob', repeat('x', 10500000)))"
    )
    with psycopg.connect(outbox_db) as conn:
        with pytest.raises(psycopg.errors.CheckViolation, match="message limit is 10000000"):
            conn.execute(huge)
        conn.rollback()
        conn.execute("ALTER TABLE event_outbox DISABLE TRIGGER event_outbox_check_row")
        conn.execute(huge)
        conn.execute("ALTER TABLE event_outbox ENABLE TRIGGER event_outbox_check_row")
        conn.commit()
        good = [enqueue(conn, event(i + 1)) for i in range(10)]
    with RelayThread(outbox_db, bus.topic):
        assert wait_until(lambda: backlog(outbox_db) == 0, seconds=30)
    with psycopg.connect(outbox_db) as conn:
        [(event_type, reason)] = conn.execute(
            "SELECT event_type, reason FROM event_outbox_failed"
        ).fetchall()
    assert event_type == "huge" and "Pub/Sub's limit is 10000000" in reason
    received = {m.message.attributes["event_id"] for m in bus.received()}
    assert received == {str(i) for i in good}


def test_failed_publish_is_retried_with_backoff_then_failed_for_good(
    outbox_db: str, bus: Bus
) -> None:
    """Settling a row whose publish failed: attempts and error recorded, next attempt later;
    at max_attempts the row moves to event_outbox_failed."""
    with psycopg.connect(outbox_db) as conn:
        event_id = enqueue(conn, event(42))
    relay = Relay(RelayConfig(outbox_db, bus.topic, max_attempts=2), make_publisher())
    relay._connect()
    try:
        from events_infra.outbox.relay import BatchResult

        rows = relay._claim()
        relay._settle(rows, {event_id: RuntimeError("boom")}, True, BatchResult())
        with psycopg.connect(outbox_db) as conn:
            retry_count, last_error, wait_s, lease = conn.execute(
                "SELECT retry_count, last_error, extract(epoch FROM next_attempt_at - now()),"
                " lease_owner FROM event_outbox"
            ).fetchone()
        assert (retry_count, last_error, lease) == (1, "boom", None)
        assert 0 < wait_s <= 1.0  # first step: 1 s with jitter
        assert relay._claim() == []  # not due yet
        with psycopg.connect(outbox_db) as conn:
            conn.execute("UPDATE event_outbox SET next_attempt_at = now()")
        rows = relay._claim()
        relay._settle(rows, {event_id: RuntimeError("boom again")}, True, BatchResult())
    finally:
        relay._close()
    with psycopg.connect(outbox_db) as conn:
        assert conn.execute("SELECT count(*) FROM event_outbox").fetchone() == (0,)
        assert conn.execute("SELECT reason FROM event_outbox_failed").fetchone() == ("boom again",)


def test_backoff_grows_exponentially_with_jitter() -> None:
    config = RelayConfig("", "", backoff_base=1.0, backoff_max=300.0)
    for attempt, step in ((1, 1), (2, 2), (5, 16), (20, 300)):
        values = [backoff_seconds(attempt, config) for _ in range(50)]
        assert all(step * 0.5 <= v <= step for v in values)
        assert len(set(values)) > 1  # jittered


def test_database_connection_loss_is_survived(outbox_db: str, bus: Bus) -> None:
    with RelayThread(outbox_db, bus.topic) as relay:
        with psycopg.connect(outbox_db) as conn:
            enqueue(conn, event(1))
        assert wait_until(lambda: backlog(outbox_db) == 0, seconds=30)
        with psycopg.connect(outbox_db, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        with psycopg.connect(outbox_db) as conn:
            enqueue(conn, event(2))
        assert wait_until(lambda: backlog(outbox_db) == 0, seconds=30)
        assert relay.thread.is_alive()
    assert len(bus.received()) == 2


def test_cleanup_removes_old_published_rows_in_batches(outbox_db: str) -> None:
    with psycopg.connect(outbox_db) as conn:
        for i in range(25):
            enqueue(conn, event(i + 1))
        conn.commit()
        conn.execute(
            "UPDATE event_outbox SET published = true, published_at = now() - interval '8 days'"
            " WHERE id IN (SELECT id FROM event_outbox ORDER BY seq LIMIT 20)"
        )
        conn.commit()
    result = runner.invoke(
        app,
        ["outbox", "cleanup", "--database-url", outbox_db, "--older-than", "7d",
         "--batch-size", "6", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"removed": 20}
    assert backlog(outbox_db) == 5  # unpublished rows are never cleaned up


def test_relay_command_errors_are_one_line(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["outbox", "relay", "--database-url", "postgresql://x@127.0.0.1:9/db"]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot connect to PostgreSQL at 127.0.0.1:9/db")
    bad = runner.invoke(app, ["outbox", "relay", "--database-url", "x", "--batch-size", "0"])
    assert bad.exit_code == 2 and "--batch-size" in bad.stderr


def test_ten_events_of_one_transaction_go_out_in_one_request(
    outbox_db: str, bus: Bus, strict_proxy: ProxyControl
) -> None:
    """What `enqueue_many` is for: a burst on one aggregate is one claim and one Publish."""
    with RelayThread(outbox_db, bus.topic, poll_interval=30.0):
        time.sleep(0.5)  # asleep on LISTEN
        with psycopg.connect(outbox_db) as conn:
            enqueue_many(conn, [event(7, n=i) for i in range(10)])
        assert wait_until(lambda: backlog(outbox_db) == 0, seconds=10)
    stats = strict_proxy.stats()["stats"]
    assert (stats["publish_requests"], stats["published_messages"]) == (1, 10)
    assert [json.loads(m.message.data)["n"] for m in bus.received()] == list(range(10))


def test_relay_claims_again_at_once_while_there_is_work(outbox_db: str, bus: Bus) -> None:
    """Five batches' worth of one key with a 30 s poll interval: the relay must not wait
    between batches (one NOTIFY wakes it; nothing else would for 30 s)."""
    with RelayThread(outbox_db, bus.topic, poll_interval=30.0, batch_size=4, per_key=4):
        time.sleep(0.5)
        with psycopg.connect(outbox_db) as conn:
            enqueue_many(conn, [event(8, n=i) for i in range(20)])
        assert wait_until(lambda: backlog(outbox_db) == 0, seconds=15)
    assert [json.loads(m.message.data)["n"] for m in bus.received()] == list(range(20))
    assert per_key_publish_order_ok(outbox_db) == []


def test_every_request_carries_one_ordering_key(
    outbox_db: str, bus: Bus, strict_proxy: ProxyControl
) -> None:
    """A mixed workload through the strict proxy: nothing refused, many keys per batch, and
    fewer requests than events wherever a key had several events waiting."""
    with psycopg.connect(outbox_db) as conn:
        for i in range(600):
            enqueue(conn, event(i % 60 + 1, n=i))
    with RelayThread(outbox_db, bus.topic):
        assert wait_until(lambda: backlog(outbox_db) == 0, seconds=60)
    stats = strict_proxy.stats()["stats"]
    assert stats.get("publish_refused", 0) == 0
    assert stats["published_messages"] == 600
    assert 60 <= stats["publish_requests"] < 600  # at least one per key, batched within keys
    assert per_key_publish_order_ok(outbox_db) == []
    assert len({m.message.attributes["event_id"] for m in bus.received()}) == 600


def test_a_refused_request_is_narrowed_to_the_bad_row_and_order_is_kept(
    outbox_db: str, bus: Bus, strict_proxy: ProxyControl
) -> None:
    """Pub/Sub refuses the key's request as invalid, then the first row alone: that row is
    failed for good, the rest of its key still goes out, in order."""
    with psycopg.connect(outbox_db) as conn:
        ids = enqueue_many(conn, [event(5, n=i) for i in range(3)])
    strict_proxy.fail("Publish", "INVALID_ARGUMENT", count=2, details="refused for the test")
    with RelayThread(outbox_db, bus.topic):
        assert wait_until(lambda: backlog(outbox_db) == 0, seconds=30)
    with psycopg.connect(outbox_db) as conn:
        failed = conn.execute("SELECT id, reason FROM event_outbox_failed").fetchall()
    assert failed == [(ids[0], "400 refused for the test")]
    assert [json.loads(m.message.data)["n"] for m in bus.received()] == [1, 2]


def test_a_failed_request_stops_its_key_and_later_requests_are_not_sent(
    bus: Bus, strict_proxy: ProxyControl
) -> None:
    from events_infra.pubsub.key_publisher import KeyPublisher, NotAttempted
    from events_infra.pubsub.publish_requests import Outgoing

    messages = [Outgoing(i, "k", b"{}", {"n": str(i)}) for i in range(1500)]  # two requests
    publisher = KeyPublisher(make_publisher(), bus.topic, timeout=0.5)
    strict_proxy.fail("Publish", "UNAVAILABLE", count=50)  # outlasts the first one's retries
    try:
        outcomes = publisher.publish({"k": messages})
    finally:
        publisher.close()
    assert all("UNAVAILABLE" in str(outcomes[i]) for i in range(1000))
    assert all(isinstance(outcomes[i], NotAttempted) for i in range(1000, 1500))
    assert strict_proxy.stats()["stats"].get("published_messages", 0) == 0


def test_a_transient_failure_delays_the_key_and_loses_nothing(
    outbox_db: str, bus: Bus, strict_proxy: ProxyControl
) -> None:
    """More rows of one key than fit one request: the first request fails (retries exhausted),
    so the second is not sent; the first's rows are retried later, the others only released."""
    with psycopg.connect(outbox_db) as conn:
        enqueue_many(conn, [event(6, n=i, attributes={"pad": "x" * 1000}) for i in range(1200)])
    strict_proxy.fail("Publish", "UNAVAILABLE", count=6)  # outlasts one publish's retries
    with RelayThread(outbox_db, bus.topic, publish_timeout=0.5, per_key=1200, batch_size=1200):
        assert wait_until(lambda: backlog(outbox_db) == 0, seconds=60)
    with psycopg.connect(outbox_db) as conn:
        published = conn.execute("SELECT count(*) FROM event_outbox WHERE published").fetchone()
    assert published == (1200,)
    assert [json.loads(m.message.data)["n"] for m in bus.received()] == list(range(1200))
    assert per_key_publish_order_ok(outbox_db) == []


def test_publisher_uses_the_locational_endpoint_outside_the_emulator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ordered publishing must stay in one region: the client targets the stack's endpoint.
    (Only the credential lookup is replaced; nothing is sent.)"""
    import google.auth
    from google.auth.credentials import AnonymousCredentials

    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    monkeypatch.setattr(google.auth, "default", lambda *a, **k: (AnonymousCredentials(), None))
    client = make_publisher("asia-south1-pubsub.googleapis.com:443")
    assert client._transport._host == "asia-south1-pubsub.googleapis.com:443"
    client.transport.close()


def test_relay_without_google_credentials_is_one_line(
    outbox_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    (stacks / "Pulumi.x.yaml").write_text(
        "config:\n  gcp:project: cotton-erp\n  gcp:region: asia-south1\n"
        "  events-infra:subscriptions: [{name: orders-sub}]\n"
    )
    result = runner.invoke(
        app,
        ["outbox", "relay", "--database-url", outbox_db, "--stack", "x",
         "--stacks-dir", str(stacks)],
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no Google credentials: run `gcloud auth")
    assert len(result.stderr.strip().splitlines()) == 1
