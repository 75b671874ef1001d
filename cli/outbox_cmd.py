"""`eventsctl outbox`: apply the outbox schema and see how far behind publishing is."""

from __future__ import annotations

from typing import Any

import typer

from cli import options
from cli.database import DATABASE_URL, connect
from cli.errors import Exit, UserError, user_errors
from cli.render import emit, table

app = typer.Typer(help="The transactional outbox: schema migrations and backlog status.")


@app.command("migrate")
def migrate_command(
    database_url: str = DATABASE_URL,
    as_json: bool = options.JSON,
) -> None:
    """Apply the outbox schema migrations that are not applied yet (safe to run repeatedly
    and concurrently; refuses if an applied migration file was edited)."""
    from outbox.migrate import MigrationError, migrate

    with user_errors():
        conn = connect(database_url)
        try:
            report = migrate(conn)
        except MigrationError as err:
            raise UserError(str(err)) from None
        finally:
            conn.close()
    data = {
        "applied": report.applied,
        "already_applied": report.already_applied,
        "schema_version": report.schema_version,
    }

    def human(d: dict[str, Any]) -> None:
        for name in d["applied"]:
            typer.echo(f"applied {name}")
        typer.echo(
            f"schema at version {d['schema_version']} "
            f"({len(d['applied'])} applied now, {len(d['already_applied'])} already applied)"
        )

    emit(data, as_json, human)


@app.command("status")
def status_command(
    database_url: str = DATABASE_URL,
    max_age: str = typer.Option(
        "5m",
        "--max-age",
        help="Exit 1 when the oldest unpublished event is older than this (e.g. 30s, 5m, 1h).",
    ),
    as_json: bool = options.JSON,
) -> None:
    """Backlog, oldest unpublished age, failing rows and rows failed for good.

    Exit 0 when the oldest unpublished event is younger than --max-age, 1 when older, 2 on error.
    """
    from components.durations import human_duration, parse_duration
    from outbox.status import read_status

    with user_errors():
        try:
            limit = parse_duration(max_age)
        except ValueError as err:
            raise UserError(f"--max-age: {err}") from None
        conn = connect(database_url)
        try:
            status = read_status(conn)
        except Exception as err:
            raise UserError(_query_error(err)) from None
        finally:
            conn.close()
    data = status.as_dict() | {"max_age_s": limit}
    late = (status.oldest_unpublished_age_s or 0) > limit
    data["behind"] = late

    def human(d: dict[str, Any]) -> None:
        oldest = d["oldest_unpublished_age_s"]
        table(
            "outbox",
            ["backlog", "oldest unpublished", "failing", "failed for good"],
            [
                [
                    d["backlog"],
                    "-" if oldest is None else human_duration(round(oldest)),
                    d["failing"],
                    d["failed_for_good"],
                ]
            ],
        )
        if d["behind"]:
            typer.echo(f"behind: oldest unpublished event is over {max_age} old", err=True)

    emit(data, as_json, human)
    raise typer.Exit(int(Exit.FOUND if late else Exit.OK))


def _query_error(err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "event_outbox" in text and "does not exist" in text:
        return "the outbox schema is not applied here; run `eventsctl outbox migrate` first"
    return f"reading the outbox failed: {text}"
