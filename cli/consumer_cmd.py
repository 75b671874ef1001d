"""`eventsctl consumer`: the consumer library's processed_events table in a service's database."""

from __future__ import annotations

import typer

from events_infra.cli import options
from events_infra.cli.database import DATABASE_URL, connect
from events_infra.cli.outbox_cmd import apply_migrations, run_cleanup

app = typer.Typer(
    help="The consumer library's dedupe table (processed_events) in a service's database."
)


@app.command("migrate")
def migrate_command(
    database_url: str = DATABASE_URL,
    as_json: bool = options.JSON,
) -> None:
    """Create or update processed_events in the service's database (run it where the service's
    own tables live: the dedupe record must commit with the handler's changes)."""
    from events_infra.consumer.processed import migrate_processed_events

    apply_migrations(lambda: connect(database_url), as_json, migrate_processed_events)


@app.command("cleanup")
def cleanup_command(
    database_url: str = DATABASE_URL,
    older_than: str = typer.Option(
        "30d",
        "--older-than",
        help="Remove records older than this (at least 15d: a DLQ replay can bring an event "
        "back up to 14 days later).",
    ),
    batch_size: int = typer.Option(5000, "--batch-size", help="Rows deleted per transaction."),
    as_json: bool = options.JSON,
) -> None:
    """Delete processed-event records older than --older-than, in bounded batches."""
    from events_infra.consumer.processed import cleanup_processed

    run_cleanup(database_url, older_than, batch_size, as_json, cleanup_processed, "records")
