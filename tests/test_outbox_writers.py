"""Every way a service writes events: psycopg, SQLAlchemy sync and async (asyncpg and psycopg),
bare asyncpg, and plain SQL from any language — on real PostgreSQL, commit and rollback."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import pytest

from events_infra.db.drivers import connect_kwargs, sqlalchemy_url
from events_infra.outbox import Event, InvalidEventError, enqueue, enqueue_async, enqueue_many
from events_infra.outbox.enqueue import NOTIFY_CHANNEL
from events_infra.outbox.event_validation import lock_bucket


def trade_event(n: int = 1, **overrides: Any) -> Event:
    fields: dict[str, Any] = {
        "event_type": "trade.created",
        "aggregate_type": "trade",
        "aggregate_id": uuid.UUID(int=n),
        "payload": {"n": n},
    }
    fields.update(overrides)
    return Event(**fields)


def stored(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT id, ordering_key, payload FROM event_outbox ORDER BY seq"
        ).fetchall()


# -- sync writers -------------------------------------------------------------------------------


def write_sqlalchemy_session(url: str, event: Event, commit: bool) -> uuid.UUID:
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    engine = create_engine(sqlalchemy_url(url, "psycopg"))
    try:
        with Session(engine) as session:
            event_id = enqueue(session, event)
            session.commit() if commit else session.rollback()
        return event_id
    finally:
        engine.dispose()


def write_sqlalchemy_connection(url: str, event: Event, commit: bool) -> uuid.UUID:
    from sqlalchemy import create_engine

    engine = create_engine(sqlalchemy_url(url, "psycopg"))
    try:
        with engine.connect() as conn:
            event_id = enqueue(conn, event)
            conn.commit() if commit else conn.rollback()
        return event_id
    finally:
        engine.dispose()


def write_psycopg(url: str, event: Event, commit: bool) -> uuid.UUID:
    with psycopg.connect(url) as conn:
        event_id = enqueue(conn, event)
        conn.commit() if commit else conn.rollback()
    return event_id


SYNC_WRITERS = {
    "psycopg": write_psycopg,
    "sqlalchemy-session": write_sqlalchemy_session,
    "sqlalchemy-connection": write_sqlalchemy_connection,
}


@pytest.mark.parametrize("commit", [True, False], ids=["commit", "rollback"])
@pytest.mark.parametrize("writer", list(SYNC_WRITERS))
def test_sync_writers_commit_with_the_transaction(
    outbox_db: str, writer: str, commit: bool
) -> None:
    event_id = SYNC_WRITERS[writer](outbox_db, trade_event(), commit)
    rows = stored(outbox_db)
    if commit:
        assert rows == [(event_id, f"trade:{uuid.UUID(int=1)}", {"n": 1})]
    else:
        assert rows == []


# -- async writers ------------------------------------------------------------------------------


async def write_async_session(url: str, driver: str, event: Event, commit: bool) -> uuid.UUID:
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    engine = create_async_engine(sqlalchemy_url(url, driver))
    try:
        async with AsyncSession(engine) as session:
            event_id = await enqueue_async(session, event)
            await (session.commit() if commit else session.rollback())
        return event_id
    finally:
        await engine.dispose()


async def write_async_connection(url: str, driver: str, event: Event, commit: bool) -> uuid.UUID:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(sqlalchemy_url(url, driver))
    try:
        async with engine.connect() as conn:
            event_id = await enqueue_async(conn, event)
            await (conn.commit() if commit else conn.rollback())
        return event_id
    finally:
        await engine.dispose()


async def write_asyncpg(url: str, event: Event, commit: bool) -> uuid.UUID:
    import asyncpg

    conn = await asyncpg.connect(**connect_kwargs(url), timeout=10)
    try:
        tx = conn.transaction()
        await tx.start()
        event_id = await enqueue_async(conn, event)
        await (tx.commit() if commit else tx.rollback())
        return event_id
    finally:
        await conn.close()


async def write_psycopg_async(url: str, event: Event, commit: bool) -> uuid.UUID:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        event_id = await enqueue_async(conn, event)
        await (conn.commit() if commit else conn.rollback())
    return event_id


ASYNC_WRITERS: dict[str, Callable[[str, Event, bool], Awaitable[uuid.UUID]]] = {
    "asyncsession-asyncpg": lambda u, e, c: write_async_session(u, "asyncpg", e, c),
    "asyncsession-psycopg": lambda u, e, c: write_async_session(u, "psycopg", e, c),
    "asyncconnection-asyncpg": lambda u, e, c: write_async_connection(u, "asyncpg", e, c),
    "asyncconnection-psycopg": lambda u, e, c: write_async_connection(u, "psycopg", e, c),
    "asyncpg": write_asyncpg,
    "psycopg-async": write_psycopg_async,
}


@pytest.mark.parametrize("commit", [True, False], ids=["commit", "rollback"])
@pytest.mark.parametrize("writer", list(ASYNC_WRITERS))
def test_async_writers_commit_with_the_transaction(
    outbox_db: str, writer: str, commit: bool
) -> None:
    event = trade_event(attributes={"region": "eu"})
    event_id = asyncio.run(ASYNC_WRITERS[writer](outbox_db, event, commit))
    rows = stored(outbox_db)
    if commit:
        assert rows == [(event_id, f"trade:{uuid.UUID(int=1)}", {"n": 1})]
        with psycopg.connect(outbox_db) as conn:
            [(attributes,)] = conn.execute("SELECT attributes FROM event_outbox").fetchall()
        assert attributes == {"region": "eu"}
    else:
        assert rows == []


def test_writers_refuse_handles_outside_a_transaction(outbox_db: str) -> None:
    """Each driver's autocommit mode would commit the event without the business change."""
    from sqlalchemy import create_engine

    engine = create_engine(sqlalchemy_url(outbox_db, "psycopg"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn, pytest.raises(InvalidEventError, match="autocommit"):
        enqueue(conn, trade_event())
    engine.dispose()

    async def asyncpg_without_transaction() -> None:
        import asyncpg

        conn = await asyncpg.connect(**connect_kwargs(outbox_db), timeout=10)
        try:
            await enqueue_async(conn, trade_event())
        finally:
            await conn.close()

    with pytest.raises(InvalidEventError, match="autocommit"):
        asyncio.run(asyncpg_without_transaction())

    async def psycopg_autocommit() -> None:
        async with await psycopg.AsyncConnection.connect(outbox_db, autocommit=True) as conn:
            await enqueue_async(conn, trade_event())

    with pytest.raises(InvalidEventError, match="autocommit"):
        asyncio.run(psycopg_autocommit())
    assert stored(outbox_db) == []


def test_async_validation_is_the_sync_validation(outbox_db: str) -> None:
    """One validation path: the async writer refuses what the sync one refuses, writing nothing."""
    bad = trade_event(attributes={"event_id": "spoofed"})
    with psycopg.connect(outbox_db) as conn, pytest.raises(InvalidEventError) as sync_err:
        enqueue(conn, bad)
    with pytest.raises(InvalidEventError) as async_err:
        asyncio.run(write_psycopg_async(outbox_db, bad, True))
    assert str(async_err.value) == str(sync_err.value)
    assert stored(outbox_db) == []


def test_enqueue_many_returns_ids_in_the_order_given(outbox_db: str) -> None:
    events = [trade_event(n) for n in (5, 1, 9, 1, 3)]
    with psycopg.connect(outbox_db) as conn:
        ids = enqueue_many(conn, events)
    by_id = {row[0]: row[2]["n"] for row in stored(outbox_db)}
    assert [by_id[i] for i in ids] == [5, 1, 9, 1, 3]


# -- plain SQL ----------------------------------------------------------------------------------

PLAIN_INSERT = (
    "INSERT INTO event_outbox (event_type, aggregate_type, aggregate_id, payload)"
    " VALUES (%s, 'trade', %s, '{}') RETURNING id"
)


def test_python_and_sql_agree_on_the_lock_bucket(outbox_db: str) -> None:
    keys = [f"trade:{uuid.uuid4()}" for _ in range(500)] + ["", "ü", "x" * 1000]
    with psycopg.connect(outbox_db) as conn:
        got = conn.execute(
            "SELECT event_outbox_lock_bucket(k) FROM unnest(%s::text[]) WITH ORDINALITY AS t(k, i)"
            " ORDER BY i",
            (keys,),
        ).fetchall()
    assert [row[0] for row in got] == [lock_bucket(k) for k in keys]
    assert len({lock_bucket(k) for k in keys}) > 300  # spread over the 1,024 buckets


def test_plain_sql_insert_gets_the_default_key_and_wakes_relays(
    outbox_db: str, writer_login: str
) -> None:
    """A service in another language writes the bare INSERT, as the writer role, with RETURNING."""
    role = writer_login
    aggregate = uuid.uuid4()
    with psycopg.connect(outbox_db, autocommit=True) as listener:
        listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        with psycopg.connect(outbox_db, user=role) as writer:
            [(event_id,)] = writer.execute(PLAIN_INSERT, ("trade.created", aggregate))
            writer.execute(PLAIN_INSERT, ("trade.updated", aggregate))
        notes = list(listener.notifies(timeout=1.0))
    assert [n.channel for n in notes] == [NOTIFY_CHANNEL]  # one per transaction
    rows = stored(outbox_db)
    assert rows[0][0] == event_id
    assert {r[1] for r in rows} == {f"trade:{aggregate}"}
    with (
        psycopg.connect(outbox_db, user=role) as writer,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        writer.execute("SELECT payload FROM event_outbox")  # still write-only


def _insert_plain(conn: psycopg.Connection, event_type: str, aggregate: uuid.UUID) -> None:
    conn.execute(PLAIN_INSERT, (event_type, aggregate))


def _insert_enqueue(conn: psycopg.Connection, event_type: str, aggregate: uuid.UUID) -> None:
    enqueue(conn, trade_event(event_type=event_type, aggregate_id=aggregate))


@pytest.mark.parametrize("insert", [_insert_plain, _insert_enqueue], ids=["plain-sql", "enqueue"])
def test_writers_of_one_key_get_seq_in_commit_order(
    outbox_db: str, insert: Callable[[psycopg.Connection, str, uuid.UUID], None]
) -> None:
    """The trigger's key lock: a second writer's INSERT waits until the first commits, so its
    row's seq is drawn after the first's commit (seq order = commit order per key)."""
    aggregate = uuid.uuid4()
    first_inserted = threading.Event()

    def slow_writer() -> None:
        with psycopg.connect(outbox_db) as conn:
            insert(conn, "trade.first", aggregate)
            first_inserted.set()
            time.sleep(0.5)

    thread = threading.Thread(target=slow_writer)
    thread.start()
    assert first_inserted.wait(10)
    with psycopg.connect(outbox_db) as conn:
        insert(conn, "trade.second", aggregate)
        # a new statement sees what committed before it: the first writer, had we waited for it
        [(seen,)] = conn.execute(
            "SELECT count(*) FROM event_outbox WHERE event_type = 'trade.first'"
        ).fetchall()
    thread.join(10)
    assert seen == 1
    with psycopg.connect(outbox_db) as conn:
        order = [r[0] for r in conn.execute("SELECT event_type FROM event_outbox ORDER BY seq")]
    assert order == ["trade.first", "trade.second"]


def test_other_keys_do_not_wait(outbox_db: str) -> None:
    """Keys in other lock buckets are written while the first writer's transaction is open."""
    first, other = uuid.UUID(int=1), uuid.UUID(int=2)
    assert lock_bucket(f"trade:{first}") != lock_bucket(f"trade:{other}")
    with psycopg.connect(outbox_db) as holder, psycopg.connect(outbox_db) as conn:
        enqueue(holder, trade_event(aggregate_id=first))
        conn.execute("SET lock_timeout = '2s'")
        enqueue(conn, trade_event(aggregate_id=other))  # would time out if it waited
        conn.commit()
