"""`eventsctl outbox`: apply the outbox schema and see how far behind publishing is."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import typer

from events_infra.cli import options
from events_infra.cli.database import DATABASE_URL, connect
from events_infra.cli.errors import Exit, UserError, fail, user_errors
from events_infra.cli.render import emit, table
from events_infra.errors import first_line
from events_infra.outbox import metric_names
from events_infra.outbox.relay_process import RelayEnvironment

app = typer.Typer(help="The transactional outbox: schema migrations and backlog status.")


@app.command("migrate")
def migrate_command(
    database_url: str = DATABASE_URL,
    cloud_sql_instance: str = typer.Option(
        None,
        "--cloud-sql-instance",
        help="PROJECT:REGION:INSTANCE: connect through the Cloud SQL connector with IAM login "
        "instead of --database-url (the migration job inside the VPC does).",
        show_default=False,
    ),
    iam_user: str = typer.Option(
        None, "--iam-user", help="IAM database user for --cloud-sql-instance.", show_default=False
    ),
    database: str = typer.Option("events", "--database", help="Database for --cloud-sql-instance."),
    private_ip: bool = typer.Option(
        False, "--private-ip", help="Reach --cloud-sql-instance on its private IP."
    ),
    as_json: bool = options.JSON,
) -> None:
    """Apply the outbox schema migrations that are not applied yet (safe to run repeatedly
    and concurrently; refuses if an applied migration file was edited)."""
    from events_infra.outbox.schema import migrate

    if cloud_sql_instance:
        apply_migrations(
            lambda: _connect_iam(cloud_sql_instance, iam_user, database, private_ip),
            as_json,
            migrate,
        )
        return
    apply_migrations(lambda: connect(database_url), as_json, migrate)


def _connect_iam(instance: str, iam_user: str | None, database: str, private_ip: bool) -> Any:
    """The migration job's connection: Cloud SQL connector, IAM login; UserError if not."""
    if not re.fullmatch(r"[a-z][a-z0-9-]*(:[a-z0-9-]+){2}", instance or ""):
        raise UserError(f"--cloud-sql-instance {instance!r}: use PROJECT:REGION:INSTANCE")
    if not iam_user:
        raise UserError("--cloud-sql-instance needs --iam-user (the IAM database user)")
    from events_infra.db.cloud_sql import connect_iam, is_permission_refusal

    try:
        return connect_iam(instance, iam_user, database, private_ip)
    except Exception as err:
        message = f"cannot connect to {instance} as {iam_user}: {first_line(err)}"
        if is_permission_refusal(err):
            raise fail(
                f"{message} (IAM grants may still be propagating)", Exit.NOT_YET_PERMITTED
            ) from None
        raise UserError(message) from None


def apply_migrations(
    open_connection: Callable[[], Any], as_json: bool, run: Callable[[Any], Any]
) -> None:
    """Connect, run one migration set (`run(conn)` returns a MigrationReport), report it.
    Shared by `outbox migrate` (a URL or the Cloud SQL connector) and `consumer migrate`."""
    from events_infra.outbox.schema import MigrationError

    with user_errors():
        conn = open_connection()
        try:
            report = run(conn)
        except MigrationError as err:
            raise UserError(str(err)) from None
        finally:
            conn.close()
    _report_migrations(report, as_json)


def _report_migrations(report: Any, as_json: bool) -> None:
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
    from events_infra.outbox.status import read_status
    from events_infra.stack_config.durations import human_duration, parse_duration

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
        if d["last_error"]:
            typer.echo(f"last publish error: {d['last_error']}", err=True)
        if d["behind"]:
            typer.echo(f"behind: oldest unpublished event is over {max_age} old", err=True)

    emit(data, as_json, human)
    raise typer.Exit(int(Exit.FOUND if late else Exit.OK))


def _query_error(err: Exception) -> str:
    text = first_line(err)
    if "event_outbox" in text and "does not exist" in text:
        return "the outbox schema is not applied here; run `eventsctl outbox migrate` first"
    return f"reading the outbox failed: {text}"


@app.command("relay")
def relay_command(
    database_url: str = DATABASE_URL,
    stack: str = options.STACK,
    stacks_dir: str = options.STACKS_DIR,
    project: str = options.PROJECT,
    topic: str = options.TOPIC,
    batch_size: int = typer.Option(500, "--batch-size", help="Rows claimed per claim."),
    claim_mib: int = typer.Option(
        32,
        "--claim-mib",
        envvar=RelayEnvironment.CLAIM_MIB,
        help="MiB of events held in flight at most, over all claims not yet settled (at least "
        "one row): what the relay holds in memory is a few times this.",
    ),
    per_key: int = typer.Option(
        100, "--per-key", help="Consecutive rows of one ordering key sent in one request."
    ),
    concurrency: int = typer.Option(
        256,
        "--publish-concurrency",
        help="Ordering keys in flight at once, each with one request on the wire at a time: "
        "enough to cover Pub/Sub's latency (keys / seconds per Publish = requests a second).",
    ),
    endpoint: str = typer.Option(
        None,
        "--pubsub-endpoint",
        envvar=RelayEnvironment.PUBSUB_ENDPOINT,
        help="Pub/Sub endpoint (default: the stack's pubsub.endpoint, or "
        "<gcp:region>-pubsub.googleapis.com:443; ignored with PUBSUB_EMULATOR_HOST).",
    ),
    topic_path: str = typer.Option(
        None,
        "--topic-path",
        envvar=RelayEnvironment.TOPIC_PATH,
        help="projects/P/topics/T to publish to without reading a stack file (the container "
        "image's way; needs --pubsub-endpoint unless PUBSUB_EMULATOR_HOST is set).",
        show_default=False,
    ),
    health_port: int = typer.Option(
        None,
        "--health-port",
        envvar=RelayEnvironment.HEALTH_PORT,
        help="Serve GET /healthz on this port (for Cloud Run's probes).",
        show_default=False,
    ),
    metrics_project: str = typer.Option(
        None,
        "--metrics-project",
        envvar=RelayEnvironment.METRICS_PROJECT,
        help="Write backlog, oldest age, published and failures to Cloud Monitoring in this "
        "project every minute.",
        show_default=False,
    ),
    metrics_location: str = typer.Option(
        "global",
        "--metrics-location",
        envvar=RelayEnvironment.METRICS_LOCATION,
        help="The location label of the relay's metrics (its region).",
    ),
    metrics_job: str = typer.Option(
        metric_names.JOB,
        "--metrics-job",
        envvar=RelayEnvironment.METRICS_JOB,
        help="The job label of the relay's metrics: its Cloud Run service, one per outbox "
        "database (what that database's alerts filter on).",
    ),
    poll_interval: float = typer.Option(
        1.0, "--poll-interval", help="Seconds between polls when no NOTIFY arrives."
    ),
    lease: float = typer.Option(60.0, "--lease", help="Seconds a claimed row stays leased."),
    publish_timeout: float = typer.Option(
        20.0,
        "--publish-timeout",
        envvar=RelayEnvironment.PUBLISH_TIMEOUT,
        help="Seconds one Publish (with its retries) may take before its rows are retried; "
        "after SIGTERM the requests in flight finish within it.",
    ),
    max_attempts: int = typer.Option(
        20, "--max-attempts", help="Failed publishes before a row is failed for good."
    ),
) -> None:
    """Publish committed outbox events to the stack's events topic until SIGTERM/SIGINT.

    Run one or several (e.g. Cloud Run instances): per-key order holds across relays. Logs one
    JSON line per settle on stderr. Exits 0 after settling the requests in flight.
    """
    from events_infra.outbox.relay_process import RelaySettings, run_relay_process

    settings = RelaySettings(
        database_url=database_url,
        stack=stack,
        stacks_dir=stacks_dir,
        project=project,
        topic=topic,
        topic_path=topic_path,
        endpoint=endpoint,
        batch_size=batch_size,
        claim_mib=claim_mib,
        per_key=per_key,
        publish_concurrency=concurrency,
        poll_interval=poll_interval,
        lease=lease,
        publish_timeout=publish_timeout,
        max_attempts=max_attempts,
        health_port=health_port,
        metrics_project=metrics_project,
        metrics_location=metrics_location,
        metrics_job=metrics_job,
    )
    with user_errors():
        published = run_relay_process(settings)
    typer.echo(f"relay stopped after publishing {published} events", err=True)


@app.command("cleanup")
def cleanup_command(
    database_url: str = DATABASE_URL,
    older_than: str = typer.Option(
        "7d", "--older-than", help="Remove published rows older than this (e.g. 7d, 12h)."
    ),
    batch_size: int = typer.Option(1000, "--batch-size", help="Rows deleted per transaction."),
    as_json: bool = options.JSON,
) -> None:
    """Delete published outbox rows older than --older-than, in bounded batches."""
    from events_infra.outbox.cleanup import cleanup

    run_cleanup(database_url, older_than, batch_size, as_json, cleanup, "rows")


def run_cleanup(
    database_url: str,
    older_than: str,
    batch_size: int,
    as_json: bool,
    delete: Callable[[Any, float, int], int],
    noun: str,
) -> None:
    """Check the flags, then `delete(conn, seconds, batch_size)` and report how many went.
    Shared by `outbox cleanup` and `consumer cleanup`; a ValueError from `delete` (a retention
    it refuses) is the user's error, one line."""
    from events_infra.stack_config.durations import parse_duration

    with user_errors():
        try:
            seconds = parse_duration(older_than)
        except ValueError as err:
            raise UserError(f"--older-than: {err}") from None
        if batch_size < 1:
            raise UserError(f"--batch-size {batch_size}: use 1 or more")
        conn = connect(database_url)
        try:
            removed = delete(conn, seconds, batch_size)
        except ValueError as err:
            raise UserError(f"--older-than {older_than}: {err}") from None
        finally:
            conn.close()
    emit({"removed": removed}, as_json, lambda d: typer.echo(f"removed {d['removed']} {noun}"))
