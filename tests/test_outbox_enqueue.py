"""The write helper and the schema's relay support, against a real PostgreSQL server."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from events_infra.outbox import Event, InvalidEventError, enqueue
from events_infra.outbox.enqueue import NOTIFY_CHANNEL
from events_infra.outbox.queries import CLAIM_SQL
from events_infra.outbox.status import read_status

CLAIM_10 = {"batch": 10, "keys": 10, "per_key": 10, "max_bytes": 1 << 30}

TRADE = uuid.UUID("7b0c6a4e-54a4-4a36-9d1e-6a7f5b1a0001")


def trade_event(**overrides: object) -> Event:
    values: dict[str, object] = {
        "event_type": "trade.created",
        "aggregate_type": "trade",
        "aggregate_id": TRADE,
        "payload": {"trade_id": str(TRADE), "quantity": 12},
    }
    values.update(overrides)
    return Event(**values)  # type: ignore[arg-type]


def count(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM event_outbox").fetchone()[0]


def test_committed_transaction_leaves_exactly_one_row(outbox_db: str) -> None:
    with psycopg.connect(outbox_db) as conn:
        event_id = enqueue(conn, trade_event(attributes={"region": "in"}))
    with psycopg.connect(outbox_db) as conn:
        rows = conn.execute(
            "SELECT id, event_type, event_version, aggregate_type, aggregate_id, ordering_key, "
            "payload, attributes, published, retry_count FROM event_outbox"
        ).fetchall()
    assert rows == [
        (
            event_id,
            "trade.created",
            1,
            "trade",
            TRADE,
            f"trade:{TRADE}",
            {"trade_id": str(TRADE), "quantity": 12},
            {"region": "in"},
            False,
            0,
        )
    ]


def test_rolled_back_transaction_leaves_no_row(outbox_db: str) -> None:
    with psycopg.connect(outbox_db) as conn:
        enqueue(conn, trade_event())
        conn.rollback()
    with pytest.raises(RuntimeError), psycopg.connect(outbox_db) as conn:
        enqueue(conn, trade_event())
        raise RuntimeError("business logic failed after the event was written")
    assert count(outbox_db) == 0


def test_autocommit_connection_is_refused(outbox_db: str) -> None:
    with (
        psycopg.connect(outbox_db, autocommit=True) as conn,
        pytest.raises(InvalidEventError, match="needs an open transaction"),
    ):
        enqueue(conn, trade_event())
    assert count(outbox_db) == 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"event_type": ""}, "event_type must be a non-empty string"),
        ({"aggregate_type": "x" * 101}, "aggregate_type is 101 characters"),
        ({"aggregate_id": "not-a-uuid"}, "aggregate_id must be a UUID"),
        ({"event_version": 0}, "event_version must be 1 or more"),
        ({"payload": {"when": object()}}, "payload is not JSON-serialisable"),
        ({"payload": float("nan")}, "payload is not JSON-serialisable"),
        ({"payload": "x" * 10_000_001}, "Pub/Sub's limit is 10000000"),
        ({"attributes": {"googfoo": "x"}}, "keys starting with 'goog'"),
        ({"attributes": {"k": 5}}, "attribute 'k' must be a string"),
        ({"attributes": {"k" * 257: "v"}}, "is over 256 bytes"),
        ({"attributes": {"k": "v" * 1025}}, "value is over 1024 bytes"),
        ({"attributes": {f"a{i}": "v" for i in range(95)}}, "Pub/Sub allows 100"),
        ({"attributes": {"event_id": "x"}}, "is set by the relay"),
        ({"attributes": {"replay_target": "x"}}, "is reserved for replay"),
        ({"attributes": {"replayed_from": "x"}}, "is reserved for replay"),
        ({"ordering_key": "k" * 1025}, "ordering_key is over"),
    ],
)
def test_invalid_events_are_refused_before_anything_is_written(
    outbox_db: str, overrides: dict[str, object], message: str
) -> None:
    with psycopg.connect(outbox_db) as conn:
        with pytest.raises(InvalidEventError, match=message):
            enqueue(conn, trade_event(**overrides))
        conn.commit()
    assert count(outbox_db) == 0


def test_one_notification_per_transaction(outbox_db: str) -> None:
    with psycopg.connect(outbox_db, autocommit=True) as listener:
        listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        with psycopg.connect(outbox_db) as writer:
            for i in range(5):
                enqueue(writer, trade_event(aggregate_id=uuid.UUID(int=i + 1)))
        received = list(listener.notifies(timeout=1.0))
    assert [n.channel for n in received] == [NOTIFY_CHANNEL]


def test_fence_hides_rows_of_open_transactions(outbox_db: str) -> None:
    with psycopg.connect(outbox_db) as open_tx:
        enqueue(open_tx, trade_event(aggregate_id=uuid.UUID(int=1)))
        with psycopg.connect(outbox_db) as later:
            enqueue(later, trade_event(aggregate_id=uuid.UUID(int=2)))
        # the later row is committed, but an older transaction is still open: nothing claimable
        with psycopg.connect(outbox_db) as relay:
            assert relay.execute(CLAIM_SQL, CLAIM_10).fetchall() == []
    with psycopg.connect(outbox_db) as relay:
        assert len(relay.execute(CLAIM_SQL, CLAIM_10).fetchall()) == 2


def test_claim_takes_runs_of_each_key_in_order_up_to_per_key(outbox_db: str) -> None:
    one, other = uuid.UUID(int=1), uuid.UUID(int=9)
    with psycopg.connect(outbox_db) as conn:
        for version in (1, 2, 3, 4):
            enqueue(conn, trade_event(aggregate_id=one, event_version=version))
        enqueue(conn, trade_event(aggregate_id=other))
    with psycopg.connect(outbox_db) as relay:
        rows = relay.execute(
            "SELECT o.aggregate_id, o.event_version FROM (" + CLAIM_SQL + ") c "
            "JOIN event_outbox o USING (id) ORDER BY o.seq",
            {"batch": 10, "keys": 10, "per_key": 3, "max_bytes": 1 << 30},
        ).fetchall()
    assert rows == [(one, 1), (one, 2), (one, 3), (other, 1)]  # a prefix of each key's run


def test_claim_run_stops_at_a_leased_row_and_never_starts_behind_one(outbox_db: str) -> None:
    key = uuid.UUID(int=1)
    with psycopg.connect(outbox_db) as conn:
        ids = [enqueue(conn, trade_event(aggregate_id=key, event_version=v)) for v in (1, 2, 3)]
        conn.commit()
        conn.execute(
            "UPDATE event_outbox SET lease_owner = 'other', lease_expires_at = now() + '1 min'"
            " WHERE id = %s",
            (ids[1],),
        )
        conn.commit()
    with psycopg.connect(outbox_db) as relay:
        claimed = [r[0] for r in relay.execute(CLAIM_SQL, CLAIM_10)]
        assert claimed == [ids[0]]  # the run ends before the leased row
    with psycopg.connect(outbox_db) as conn:
        conn.execute(
            "UPDATE event_outbox SET published = true, published_at = now() WHERE id = %s",
            (ids[0],),
        )
        conn.commit()
    with psycopg.connect(outbox_db) as relay:
        assert relay.execute(CLAIM_SQL, CLAIM_10).fetchall() == []  # its head is leased


def test_two_relays_never_claim_the_same_key_at_once(outbox_db: str) -> None:
    with psycopg.connect(outbox_db) as conn:
        for i in range(6):
            enqueue(conn, trade_event(aggregate_id=uuid.UUID(int=i % 2 + 1), event_version=i + 1))
    with psycopg.connect(outbox_db) as first, psycopg.connect(outbox_db) as second:
        mine = {r[0] for r in first.execute(CLAIM_SQL, CLAIM_10)}
        theirs = {r[0] for r in second.execute(CLAIM_SQL, CLAIM_10)}
    assert len(mine) == 6 and theirs == set()  # both heads are locked by the first claim


def test_claim_query_uses_the_pending_partial_indexes(outbox_db: str) -> None:
    """Every statement the claim function runs, as auto_explain sees it: the pending partial
    indexes, never a scan of the whole table (published rows pile up between cleanups)."""
    with psycopg.connect(outbox_db) as conn:
        conn.execute(
            "INSERT INTO event_outbox (event_type, aggregate_type, aggregate_id, ordering_key,"
            " payload, published, published_at)"
            " SELECT 'trade.created', 'trade', gen_random_uuid(), 'trade:' || (g % 150),"
            " '{}'::jsonb, g > 3000, CASE WHEN g > 3000 THEN now() END"
            " FROM generate_series(1, 50000) g"
        )
        conn.commit()
        conn.execute("ANALYZE event_outbox")
        plans: list[str] = []
        conn.add_notice_handler(lambda notice: plans.append(notice.message_primary or ""))
        conn.execute("LOAD 'auto_explain'")
        for setting in ("log_min_duration = 0", "log_nested_statements = on",
                        "log_level = notice"):  # fmt: skip
            conn.execute(f"SET auto_explain.{setting}")
        # 3,000 pending rows over 150 keys: the window (1,000 rows) holds 150 heads, so a
        # claim asking for more keys than that looks beyond it, key by key
        claimed = conn.execute(
            CLAIM_SQL, {"batch": 400, "keys": 200, "per_key": 2, "max_bytes": 1 << 30}
        ).fetchall()
        cleanup = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT id FROM event_outbox WHERE published AND "
                "published_at < now() - interval '7 days' LIMIT 1000"
            )
        )
    assert len(claimed) == 300  # 150 keys x 2
    inner = [p for p in plans if "event_outbox_claim" not in p.split("plan:", 1)[-1][:200]]
    print("\n\n".join(inner))
    assert len(inner) >= 4  # window, first pass, the run per head, start key, loose scan
    assert any("event_outbox_pending_by_key" in p and "Recursive Union" in p for p in inner)
    for plan in inner:
        assert "Seq Scan on event_outbox" not in plan
        assert "Bitmap" not in plan  # a hot key's whole backlog read to return a few rows
    assert "event_outbox_published_at_idx" in cleanup


def test_status_reports_backlog_failing_and_failed(outbox_db: str) -> None:
    with psycopg.connect(outbox_db) as conn:
        assert read_status(conn).backlog == 0
        assert read_status(conn).oldest_unpublished_age_s is None
        for i in range(3):
            enqueue(conn, trade_event(aggregate_id=uuid.UUID(int=i + 1)))
        conn.commit()
        conn.execute(
            "UPDATE event_outbox SET created_at = now() - interval '90 seconds', retry_count = 2"
            " WHERE aggregate_id = %s",
            (uuid.UUID(int=1),),
        )
        conn.execute(
            "INSERT INTO event_outbox_failed (id, event_type, event_version, aggregate_type,"
            " aggregate_id, ordering_key, seq, payload, attributes, retry_count, created_at,"
            " reason) VALUES (gen_random_uuid(), 't', 1, 'trade', gen_random_uuid(), 'k', 1,"
            " '{}', '{}', 9, now(), %s)",
            (json.dumps({"why": "oversize"}),),
        )
        conn.commit()
        status = read_status(conn)
    assert (status.backlog, status.failing, status.failed_for_good) == (3, 1, 1)
    assert status.oldest_unpublished_age_s is not None
    assert 89 <= status.oldest_unpublished_age_s < 150


def test_writer_and_relay_roles_have_only_what_they_need(outbox_db: str) -> None:
    """Migration 0002's roles, as the Access component grants them to IAM database users."""
    suffix = uuid.uuid4().hex[:8]
    writer, relay = f"svc_{suffix}", f"relay_{suffix}"
    with psycopg.connect(outbox_db, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {writer} LOGIN IN ROLE events_outbox_writer")
        admin.execute(f"CREATE ROLE {relay} LOGIN IN ROLE events_outbox_relay")
    try:
        with psycopg.connect(outbox_db, user=writer) as conn:
            enqueue(conn, trade_event())
        with (
            psycopg.connect(outbox_db, user=writer) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            conn.execute("DELETE FROM event_outbox")
        with psycopg.connect(outbox_db, user=relay) as conn:
            [(claimed,)] = conn.execute(CLAIM_SQL, CLAIM_10).fetchall()
            conn.execute(
                "UPDATE event_outbox SET published = true, published_at = now() WHERE id = %s",
                (claimed,),
            )
        with (
            psycopg.connect(outbox_db, user=relay) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            enqueue(conn, trade_event())
    finally:
        with psycopg.connect(outbox_db, autocommit=True) as admin:
            admin.execute(f"DROP OWNED BY {writer}, {relay}")
            admin.execute(f"DROP ROLE {writer}")
            admin.execute(f"DROP ROLE {relay}")
