"""`eventsctl dlq journals`: the undo journals on this machine, and pruning them."""

from __future__ import annotations

from typing import Any

import typer

from events_infra.cli import options
from events_infra.cli.dlq_commands.common import AUDIT_LOG, app
from events_infra.cli.errors import user_errors
from events_infra.cli.render import emit, table


@app.command("journals")
def journals_command(
    stack: str = options.STACK,
    stacks_dir: str = options.STACKS_DIR,
    older_than: str = typer.Option(
        None,
        "--older-than",
        help="Retention (e.g. 7d); default: the stack's dead_letter.message_retention.",
        show_default=False,
    ),
    prune: bool = typer.Option(False, "--prune", help="Delete the journals past retention."),
    dry_run: bool = typer.Option(False, "--dry-run", help="With --prune: only list them."),
    audit_log: str = AUDIT_LOG,
    as_json: bool = options.JSON,
) -> None:
    """List the undo journals replay, purge and migrate wrote (0600 files holding whole
    payloads), and with --prune delete those older than the retention.

    A journal restores the dead letters it recorded (`dlq restore --journal`); past the DLQ's own
    retention those would be gone anyway, so that is the default. Pruning is audited.
    """
    from events_infra.dlq.journal import journals_report

    with user_errors():
        report = journals_report(stack, stacks_dir, older_than, prune, dry_run, audit_log)
    emit(report, as_json, _print)


def _print(report: dict[str, Any]) -> None:
    rows = [[j["path"], j["age"], str(j["bytes"]), "yes" if j["expired"] else ""]
            for j in report["journals"]]  # fmt: skip
    table(
        f"journals in {report['directory']} (retention {report['retention']})",
        ["journal", "age", "bytes", "past retention"],
        rows,
    )
    if report["pruned"]:
        verb = "would delete" if report["dry_run"] else "deleted"
        typer.echo(f"{verb} {len(report['pruned'])} journals past {report['retention']}", err=True)
