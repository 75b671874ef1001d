"""`eventsctl outbox migrate / status` through the CLI, against a real PostgreSQL server."""

from __future__ import annotations

import json
import uuid

import psycopg
from typer.testing import CliRunner

from events_infra.cli.app import app
from events_infra.outbox import Event, enqueue
from events_infra.outbox.schema import load_migrations

runner = CliRunner()
SHIPPED = [m.filename for m in load_migrations()]


def test_migrate_then_migrate_again(database_url: str) -> None:
    first = runner.invoke(app, ["outbox", "migrate", "--database-url", database_url])
    assert first.exit_code == 0, first.output
    assert "applied 0001_event_outbox.sql" in first.stdout
    second = runner.invoke(app, ["outbox", "migrate", "--database-url", database_url, "--json"])
    assert second.exit_code == 0
    assert json.loads(second.stdout) == {
        "applied": [],
        "already_applied": SHIPPED,
        "schema_version": len(SHIPPED),
    }


def test_migrate_reads_database_url_from_the_environment(database_url: str) -> None:
    result = runner.invoke(app, ["outbox", "migrate"], env={"DATABASE_URL": database_url})
    assert result.exit_code == 0, result.output


def test_edited_migration_is_a_clean_error(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "CREATE TABLE outbox_schema_migrations (version int PRIMARY KEY, name text NOT NULL,"
            " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute(
            "INSERT INTO outbox_schema_migrations VALUES (1, 'event_outbox', 'abc', now())"
        )
    result = runner.invoke(app, ["outbox", "migrate", "--database-url", database_url])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: migration 0001_event_outbox.sql was edited")
    assert "Traceback" not in result.output


def test_status_json_and_exit_codes(outbox_db: str) -> None:
    empty = runner.invoke(app, ["outbox", "status", "--database-url", outbox_db, "--json"])
    assert empty.exit_code == 0, empty.output
    assert json.loads(empty.stdout)["backlog"] == 0

    with psycopg.connect(outbox_db) as conn:
        for i in range(4):
            enqueue(
                conn,
                Event("trade.created", "trade", uuid.UUID(int=i + 1), {"n": i}),
            )
    with psycopg.connect(outbox_db) as conn:
        conn.execute("UPDATE event_outbox SET created_at = now() - interval '10 minutes'")

    late = runner.invoke(app, ["outbox", "status", "--database-url", outbox_db, "--json"])
    assert late.exit_code == 1
    data = json.loads(late.stdout)
    assert data["backlog"] == 4 and data["behind"] is True
    assert data["oldest_unpublished_age_s"] >= 600

    relaxed = runner.invoke(
        app, ["outbox", "status", "--database-url", outbox_db, "--max-age", "1h"]
    )
    assert relaxed.exit_code == 0
    assert "backlog" in relaxed.stdout


def test_status_before_migrate_says_what_to_run(database_url: str) -> None:
    result = runner.invoke(app, ["outbox", "status", "--database-url", database_url])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: the outbox schema is not applied here; run `eventsctl outbox migrate` first"
    )


def test_unreachable_database_is_one_line_without_the_password() -> None:
    url = "postgresql://relay:hunter2@127.0.0.1:9/events"
    result = runner.invoke(app, ["outbox", "status"], env={"DATABASE_URL": url})
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: cannot connect to PostgreSQL at 127.0.0.1:9/events")
    assert "hunter2" not in result.output


def test_missing_database_url() -> None:
    result = runner.invoke(app, ["outbox", "migrate"], env={"DATABASE_URL": ""})
    assert result.exit_code == 2
    assert "pass --database-url or set DATABASE_URL" in result.stderr
