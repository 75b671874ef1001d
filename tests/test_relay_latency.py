"""The relay at production latency, on real PostgreSQL and the emulator behind the strict proxy,
whose `delay` holds Publish requests as production's network does: many requests in flight
without breaking per-key order or losing an event, a slow key holding back only itself, leases
renewed while a request is slow, and kills (SIGKILL, SIGTERM) in the middle of it all."""

from __future__ import annotations

import signal
import uuid
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from events_infra.local.proxy.control import ProxyControl
from events_infra.outbox import Event, enqueue_many
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

EVERY_CALL = 1_000_000
"""A delay `count` no test uses up: every Publish is held."""


@pytest.fixture
def bus(pubsub: str) -> Bus:
    return Bus.create()


def event(aggregate: int, n: int = 0) -> Event:
    return Event("trade.updated", "trade", uuid.UUID(int=aggregate), {"n": n})


def key_of(aggregate: int) -> str:
    return f"trade:{uuid.UUID(int=aggregate)}"


def published(url: str, ids: list[uuid.UUID] | None = None) -> int:
    with psycopg.connect(url) as conn:
        if ids is None:
            sql, params = "SELECT count(*) FROM event_outbox WHERE published", ()
        else:
            sql = "SELECT count(*) FROM event_outbox WHERE published AND id = ANY(%s)"
            params = (ids,)
        return conn.execute(sql, params).fetchone()[0]


def stat(proxy: ProxyControl, name: str) -> int:
    return proxy.stats()["stats"].get(name, 0)


def test_many_requests_in_flight_keep_per_key_order_and_lose_nothing(
    outbox_db: str, bus: Bus, strict_proxy: ProxyControl
) -> None:
    """Every Publish takes 0.2 s; concurrent writers (rollbacks, slow commits) on 300 keys; two
    relays. More requests are on the wire at once than the old batch-wide relay ever had (32),
    and still: every committed event exactly once, nothing rolled back, per-key order kept."""
    strict_proxy.delay("Publish", 0.2, count=EVERY_CALL)
    with relays(outbox_db, bus.topic, 2):
        work = write_concurrently(outbox_db, transactions=1200, writers=6, aggregates=300)
        assert wait_until(lambda: backlog(outbox_db) == 0, seconds=180)
    assert stat(strict_proxy, "publish_in_flight_max") > 32
    assert per_key_publish_order_ok(outbox_db) == []
    received = Counter(m.message.attributes["event_id"] for m in bus.received())
    assert set(received) == {str(i) for i in work.committed}
    assert max(received.values()) == 1
    assert stat(strict_proxy, "publish_refused") == 0


def test_a_slow_key_holds_back_only_itself_and_keeps_its_lease(
    outbox_db: str, bus: Bus, strict_proxy: ProxyControl
) -> None:
    """One key's Publish is held 10 s (production's worst spikes, and a retrying request, look
    like this), with a 2 s lease and a second relay ready to take over any lease that runs out.
    Every other key is published while it is held (their rows are settled before it); the slow
    key's second event waits for its first; the slow request's lease is renewed, so no relay
    publishes that key a second time."""
    with psycopg.connect(outbox_db) as conn:
        slow = enqueue_many(conn, [event(1, n=1)])
    strict_proxy.delay("Publish", 10.0, count=1, ordering_key=key_of(1))
    first = RelayThread(outbox_db, bus.topic, lease_seconds=2.0, publish_timeout=30.0)
    with first:
        assert wait_until(lambda: stat(strict_proxy, "delays_injected.Publish.key") == 1, 30)
        with RelayThread(outbox_db, bus.topic, lease_seconds=2.0):
            with psycopg.connect(outbox_db) as conn:  # the slow key's next event, then others
                slow += enqueue_many(conn, [event(1, n=2)])
                others = enqueue_many(conn, [event(k + 2, n=k) for k in range(300)])
            assert wait_until(lambda: backlog(outbox_db) == 0, seconds=90)
    with psycopg.connect(outbox_db) as conn:
        [(slow_at, second_at, others_at)] = conn.execute(
            "SELECT (SELECT published_at FROM event_outbox WHERE id = %s),"
            " (SELECT published_at FROM event_outbox WHERE id = %s),"
            " (SELECT max(published_at) FROM event_outbox WHERE id = ANY(%s))",
            (slow[0], slow[1], others),
        ).fetchall()
    assert others_at < slow_at < second_at  # the others did not wait; its next one did
    received = [m.message for m in bus.received()]
    on_slow_key = [m.attributes["event_id"] for m in received if m.ordering_key == key_of(1)]
    assert sorted(on_slow_key) == sorted(map(str, slow))  # once each: its lease held
    assert len({m.attributes["event_id"] for m in received}) == len(received) == 302
    assert stat(strict_proxy, "delays_injected.Publish.key") == 1
    assert per_key_publish_order_ok(outbox_db) == []


def test_sigkill_with_requests_in_flight_loses_nothing(
    outbox_db: str, bus: Bus, strict_proxy: ProxyControl, tmp_path: Path
) -> None:
    """SIGKILL while many requests are on the wire (each held 0.5 s): rows claimed, in flight
    and unsettled are published again after their lease by the next relay, none lost, per-key
    order kept."""
    with psycopg.connect(outbox_db) as conn:
        ids = enqueue_many(conn, [event(i % 1000 + 1, n=i) for i in range(3000)])
    strict_proxy.delay("Publish", 0.5, count=EVERY_CALL)
    child = relay_process(outbox_db, tmp_path, bus.project, "--lease", "2")
    try:
        assert wait_until(lambda: published(outbox_db) >= 100, seconds=60)
        assert stat(strict_proxy, "publish_in_flight_max") > 32
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        child.kill()
    assert 0 < backlog(outbox_db) < len(ids)
    strict_proxy.reset()
    with RelayThread(outbox_db, bus.topic):
        assert wait_until(lambda: backlog(outbox_db) == 0, seconds=120)
    received = {m.message.attributes["event_id"] for m in bus.received()}
    assert {str(i) for i in ids} <= received
    assert per_key_publish_order_ok(outbox_db) == []


def test_sigterm_settles_what_is_in_flight_within_cloud_runs_10_s(
    outbox_db: str, bus: Bus, strict_proxy: ProxyControl, tmp_path: Path
) -> None:
    """SIGTERM with a few hundred requests on the wire (each held 2 s), at the container's
    publish deadline (7 s): the process exits 0 within the 10 s Cloud Run gives before SIGKILL
    (a bound on the test, not a measurement), every message Pub/Sub accepted is settled as
    published (nothing will go out twice), the rest are released with no attempt spent."""
    with psycopg.connect(outbox_db) as conn:
        ids = enqueue_many(conn, [event(i + 1, n=i) for i in range(3000)])
    strict_proxy.delay("Publish", 2.0, count=EVERY_CALL)
    child = relay_process(outbox_db, tmp_path, bus.project, "--publish-timeout", "7")
    try:
        assert wait_until(lambda: stat(strict_proxy, "delays_injected.Publish") >= 100, 60)
        child.send_signal(signal.SIGTERM)
        assert child.wait(10) == 0
    finally:
        child.kill()
    with psycopg.connect(outbox_db) as conn:
        leased, spent = conn.execute(
            "SELECT count(*) FILTER (WHERE lease_owner IS NOT NULL), max(retry_count)"
            " FROM event_outbox"
        ).fetchone()
    assert (leased, spent) == (0, 0)
    assert published(outbox_db) == stat(strict_proxy, "published_messages") > 0
    assert backlog(outbox_db) > 0  # it stopped, as asked
    strict_proxy.reset()
    with RelayThread(outbox_db, bus.topic):
        assert wait_until(lambda: backlog(outbox_db) == 0, seconds=120)
    received = Counter(m.message.attributes["event_id"] for m in bus.received())
    assert set(received) == {str(i) for i in ids} and max(received.values()) == 1
