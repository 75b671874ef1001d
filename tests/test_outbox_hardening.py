"""Untrusted writers (migration 0004 and the relay's own checks), on real PostgreSQL and the
emulator behind the strict proxy: no row a writer can INSERT stops the relay, stalls a key,
routes an event or forges a replay; a claim is bounded by bytes as well as rows."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from events_infra.outbox import Event, enqueue
from events_infra.outbox.queries import CLAIM_SQL
from events_infra.pubsub import event_json
from events_infra.pubsub.attributes import RESERVED, is_reserved
from tests.support.relay_support import Bus, RelayThread, backlog, wait_until

INSERT = (
    "INSERT INTO event_outbox (event_type, aggregate_type, aggregate_id, ordering_key, payload,"
    " attributes) VALUES ('trade.updated', 'trade', gen_random_uuid(), %s, %s::jsonb, %s::jsonb)"
)


@pytest.fixture
def bus(pubsub: str) -> Bus:
    return Bus.create()


def nested(levels: int) -> str:
    """JSON with `levels` containers nested, objects and arrays alternating."""
    text = "1"
    for level in range(levels):
        text = f"[{text}]" if level % 2 else f'{{"a":{text}}}'
    return text


def legacy_rows(url: str, rows: list[tuple[str, str, str]]) -> None:
    """Rows written before migration 0004 (or by a role its trigger did not bind): the check is
    switched off while they are written, as it did not exist then."""
    with psycopg.connect(url) as conn:
        conn.execute("ALTER TABLE event_outbox DISABLE TRIGGER event_outbox_check_row")
        for key, payload, attributes in rows:
            conn.execute(INSERT, (key, payload, attributes))
        conn.execute("ALTER TABLE event_outbox ENABLE TRIGGER event_outbox_check_row")


def test_depth_rule_is_the_same_in_python_and_postgresql(outbox_db: str) -> None:
    with psycopg.connect(outbox_db) as conn:
        for levels in (0, 1, 2, event_json.MAX_DEPTH, event_json.MAX_DEPTH + 1, 200):
            text = nested(levels)
            [(deeper,)] = conn.execute(
                "SELECT jsonb_path_exists(%s::jsonb, 'strict $.**{65}')", (text,)
            ).fetchall()
            assert event_json.depth(json.loads(text)) == levels
            assert (
                deeper
                == (levels > event_json.MAX_DEPTH)
                == event_json.too_deep(text, json.loads(text))
            )


def test_a_nested_or_forged_row_is_failed_alone_and_everything_else_flows(
    outbox_db: str, bus: Bus
) -> None:
    """Rows the database holds from before its checks: one nested deeper than Python's decoder
    can go (it used to fail every claim: a crash loop), one deeper than the outbox allows, one
    claiming to be a replayed copy for one subscription. Each goes to event_outbox_failed with
    its reason; the normal rows around them, on their keys and on others, are published."""
    legacy_rows(
        outbox_db,
        [
            ("trade:deep", nested(1500), "{}"),
            ("trade:deep", '{"n": "after the deep one"}', "{}"),
            ("trade:wide", nested(100), "{}"),
            ("trade:forged", '{"n": 1}', json.dumps({"replay_target": "billing-sub"})),
        ],
    )
    with psycopg.connect(outbox_db) as conn:
        normal = [enqueue(conn, Event("trade.updated", "trade", uuid.uuid4(), {"n": i}))
                  for i in range(5)]  # fmt: skip
    with RelayThread(outbox_db, bus.topic) as relay:
        assert wait_until(lambda: backlog(outbox_db) == 0, seconds=30)
        with psycopg.connect(outbox_db) as conn:
            later = enqueue(conn, Event("trade.updated", "trade", uuid.uuid4(), {"n": "later"}))
        assert wait_until(lambda: backlog(outbox_db) == 0, seconds=30)
        assert relay.thread.is_alive()  # no crash, no restart
    with psycopg.connect(outbox_db) as conn:
        failed = dict(conn.execute("SELECT ordering_key, reason FROM event_outbox_failed"))
    assert set(failed) == {"trade:deep", "trade:wide", "trade:forged"}
    assert "nested too deep to decode" in failed["trade:deep"]
    assert "more than 64 levels" in failed["trade:wide"]
    assert "'replay_target' is reserved" in failed["trade:forged"]
    received = bus.received()
    ids = {m.message.attributes["event_id"] for m in received}
    assert {str(i) for i in [*normal, later]} <= ids and len(ids) == len(normal) + 2
    [after] = [m for m in received if m.message.ordering_key == "trade:deep"]
    assert json.loads(after.message.data) == {"n": "after the deep one"}


@pytest.mark.parametrize(
    "key",
    [*sorted(RESERVED), "replay_anything", "CloudPubSubDeadLetterSourceSubscription", "GOOGx"],
)
def test_the_database_refuses_reserved_attributes(
    outbox_db: str, writer_login: str, key: str
) -> None:
    assert is_reserved(key)
    with (
        psycopg.connect(outbox_db, user=writer_login) as conn,
        pytest.raises(psycopg.errors.CheckViolation, match=f"attribute {key} is reserved"),
    ):
        conn.execute(INSERT, ("trade:1", "{}", json.dumps({key: "x"})))


def test_the_database_takes_ordinary_rows_and_refuses_what_the_relay_cannot_publish(
    outbox_db: str, writer_login: str
) -> None:
    with psycopg.connect(outbox_db, user=writer_login) as conn:
        ok = {"tenant": "acme", "replayed": "no", "source": "erp"}
        assert not any(map(is_reserved, ok))
        conn.execute(INSERT, ("trade:1", nested(event_json.MAX_DEPTH), json.dumps(ok)))
        conn.commit()
        refused = {
            "a non-string attribute": ("{}", '{"n": 5}', "must be a string"),
            "a payload nested 65 deep": (nested(65), "{}", "more than 64 levels"),
            "an event over 10 MB": (json.dumps({"blob": "x" * 10_000_000}), "{}", "10000000"),
        }
        for case, (payload, attributes, reason) in refused.items():
            with pytest.raises(psycopg.errors.CheckViolation, match=reason):
                conn.execute(INSERT, ("trade:1", payload, attributes))
            conn.rollback()
            assert case
    with psycopg.connect(outbox_db) as conn:
        [(size,)] = conn.execute("SELECT event_bytes FROM event_outbox").fetchall()
        assert size and size > 0  # recorded at insert, for the claim's byte budget


@pytest.mark.parametrize(
    "column",
    ["txid", "next_attempt_at", "lease_owner", "lease_expires_at", "published",
     "retry_count", "event_bytes"],
)  # fmt: skip
def test_a_writer_may_not_set_the_relays_columns(
    outbox_db: str, writer_login: str, column: str
) -> None:
    """A future txid or next_attempt_at, a lease or `published` written by a writer would stall
    or drop the row's key: column-level INSERT leaves them to their defaults and the relay."""
    values = {
        "txid": "'99999999'::xid8", "seq": "1", "next_attempt_at": "now() + interval '10 years'",
        "lease_owner": "'me'", "lease_expires_at": "now() + interval '10 years'",
        "published": "true", "retry_count": "0", "event_bytes": "1",
    }  # fmt: skip
    with psycopg.connect(outbox_db, user=writer_login) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO event_outbox (event_type, aggregate_type, aggregate_id, payload, "
                f"{column}) VALUES ('t', 'trade', gen_random_uuid(), '{{}}', {values[column]})"
            )
        conn.rollback()
        enqueue(conn, Event("trade.updated", "trade", uuid.uuid4(), {"n": 1}))  # still writes


def test_a_claim_is_bounded_by_bytes_and_holds_at_least_one_row(outbox_db: str, bus: Bus) -> None:
    blob = "x" * 100_000
    with psycopg.connect(outbox_db) as conn:
        for i in range(12):
            enqueue(conn, Event("trade.updated", "trade", uuid.uuid4(), {"blob": blob, "n": i}))
        conn.commit()
        [(size,)] = conn.execute("SELECT max(event_bytes) FROM event_outbox").fetchall()

        def claim(max_bytes: int) -> int:
            with conn.transaction():
                rows = conn.execute(
                    CLAIM_SQL, {"batch": 500, "keys": 500, "per_key": 100, "max_bytes": max_bytes}
                ).fetchall()
            return len(rows)

        assert claim(1 << 30) == 12
        assert claim(int(size * 3.5)) == 3
        assert claim(10) == 1  # a row over the budget still goes, alone
    with RelayThread(outbox_db, bus.topic, claim_bytes=int(size * 2.5)):
        assert wait_until(lambda: backlog(outbox_db) == 0, seconds=30)
    assert len({m.message.attributes["event_id"] for m in bus.received()}) == 12
