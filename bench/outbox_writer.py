"""Async writer latency: `enqueue_async` against a plain async INSERT of the same row.

One transaction per event, as a request handler does it (begin, write, commit), on real
PostgreSQL (embedded unless DATABASE_URL is set), for each async driver a service may use:

  plain INSERT   the same row written by hand with the same driver, into a copy of event_outbox
                 without triggers (what an INSERT costs without any outbox machinery)
  plain (outbox) the same hand-written INSERT into event_outbox (its triggers fire: key default,
                 key lock, NOTIFY): what a service writing plain SQL pays
  enqueue_async  validation + the one INSERT into event_outbox

Goal (issue 14): enqueue_async <= 1.5x the plain INSERT's latency (p50).

    python bench/outbox_writer.py [--events 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from bench.databases import fresh_database, postgres_server  # noqa: E402
from events_infra.db.drivers import connect_kwargs, sqlalchemy_url  # noqa: E402
from events_infra.outbox import Event, enqueue_async  # noqa: E402
from events_infra.outbox.schema import migrate  # noqa: E402

PLAIN = (
    "INSERT INTO {table} (id, event_type, event_version, aggregate_type, aggregate_id,"
    " ordering_key, payload, attributes) VALUES ({params})"
)


def prepare(conn: Any) -> None:
    migrate(conn)
    conn.execute("CREATE TABLE plain_outbox (LIKE event_outbox INCLUDING ALL)")


def event() -> Event:
    return Event("trade.created", "trade", uuid.uuid4(), {"trade_id": 1, "qty": 10})


def hand_written_row() -> tuple[Any, ...]:
    """The same row's values as a service would pass them by hand: no validation."""
    aggregate = uuid.uuid4()
    payload = json.dumps({"trade_id": 1, "qty": 10})
    return (uuid.uuid4(), "trade.created", 1, "trade", aggregate, f"trade:{aggregate}",
            payload, "{}")  # fmt: skip


async def timed(count: int, one: Callable[[], Awaitable[None]]) -> list[float]:
    for _ in range(50):  # warm up: connection, prepared statements, caches
        await one()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await one()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def sqlalchemy_runs(url: str, driver: str, count: int) -> dict[str, list[float]]:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    engine = create_async_engine(sqlalchemy_url(url, driver), pool_size=1)
    names = [f":p{i}" for i in range(8)]
    names[6], names[7] = "CAST(:p6 AS jsonb)", "CAST(:p7 AS jsonb)"

    def plain(table: str) -> Callable[[], Awaitable[None]]:
        sql = text(PLAIN.format(table=table, params=", ".join(names)))

        async def one() -> None:
            row = hand_written_row()
            async with AsyncSession(engine) as session, session.begin():
                await session.execute(sql, {f"p{i}": v for i, v in enumerate(row)})

        return one

    async def writer() -> None:
        async with AsyncSession(engine) as session, session.begin():
            await enqueue_async(session, event())

    try:
        return await _three(count, plain("plain_outbox"), plain("event_outbox"), writer)
    finally:
        await engine.dispose()


async def asyncpg_runs(url: str, count: int) -> dict[str, list[float]]:
    import asyncpg

    conn = await asyncpg.connect(**connect_kwargs(url))
    params = ", ".join(f"${i}" for i in range(1, 7)) + ", $7::jsonb, $8::jsonb"

    def plain(table: str) -> Callable[[], Awaitable[None]]:
        sql = PLAIN.format(table=table, params=params)

        async def one() -> None:
            async with conn.transaction():
                await conn.execute(sql, *hand_written_row())

        return one

    async def writer() -> None:
        async with conn.transaction():
            await enqueue_async(conn, event())

    try:
        return await _three(count, plain("plain_outbox"), plain("event_outbox"), writer)
    finally:
        await conn.close()


async def _three(count: int, plain: Any, plain_outbox: Any, writer: Any) -> dict[str, list[float]]:
    """Interleaved rounds so drift (autovacuum, page cache) hits all three alike."""
    runs: dict[str, list[float]] = {"plain INSERT": [], "plain (outbox)": [], "enqueue_async": []}
    rounds = 5
    for _ in range(rounds):
        runs["plain INSERT"] += await timed(count // rounds, plain)
        runs["plain (outbox)"] += await timed(count // rounds, plain_outbox)
        runs["enqueue_async"] += await timed(count // rounds, writer)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    args = parser.parse_args()
    with postgres_server() as server_url:
        results = {
            "AsyncSession/asyncpg": asyncio.run(
                sqlalchemy_runs(fresh_database(server_url, prepare), "asyncpg", args.events)
            ),
            "AsyncSession/psycopg": asyncio.run(
                sqlalchemy_runs(fresh_database(server_url, prepare), "psycopg", args.events)
            ),
            "asyncpg": asyncio.run(asyncpg_runs(fresh_database(server_url, prepare), args.events)),
        }

    print(f"one event per transaction, {args.events} transactions per run; latency in ms")
    print(f"{'driver':<22} {'run':<15} {'p50':>6} {'p99':>6}")
    worst = 0.0
    for driver, runs in results.items():
        base = statistics.median(runs["plain INSERT"])
        for name, samples in runs.items():
            p50 = statistics.median(samples)
            p99 = sorted(samples)[int(len(samples) * 0.99) - 1]
            print(f"{driver:<22} {name:<15} {p50:>6.3f} {p99:>6.3f}  {p50 / base:.2f}x")
        worst = max(worst, statistics.median(runs["enqueue_async"]) / base)
    verdict = "met" if worst <= 1.5 else "NOT met"
    print(f"goal: enqueue_async <= 1.5x plain INSERT (p50): worst {worst:.2f}x ({verdict})")


if __name__ == "__main__":
    main()
