"""`eventsctl dlq doctor`: the live Pub/Sub setup against the stack file."""

from __future__ import annotations

from typing import Any

import typer

from events_infra.cli import options
from events_infra.cli.dlq_commands.common import app, context
from events_infra.cli.errors import Exit, user_errors
from events_infra.cli.render import emit, table


@app.command("doctor")
def doctor_command(
    stack: str = options.STACK,
    stacks_dir: str = options.STACKS_DIR,
    project: str = options.PROJECT,
    as_json: bool = options.JSON,
    verbose: bool = typer.Option(
        False, "--all", help="Also list the checks that passed (--json always has every one)."
    ),
    fail_unchecked: bool = typer.Option(
        False,
        "--fail-unchecked",
        help="Exit 3 when nothing is wrong but something could not be checked (for schedules).",
    ),
) -> None:
    """Check the live Pub/Sub setup and alert policies against the stack file.

    Names each silent failure and each drift from the stack: every setting the stack declares
    on its topics and subscriptions (dead-letter policy and attempts, backoff, ack deadline,
    retention, expiry, filter, ordering, exactly-once, push, labels, topic retention and key),
    subscriptions on the events or dead-letter topic the stack does not declare, a dead-letter
    topic without subscription, (on real GCP) missing service-agent grants, and the stack's
    alert policies in Cloud Monitoring (missing, disabled, changed condition, no channels), and
    each outbox Cloud SQL instance: every field the stack sets, or, for a service's own
    instance, what the stack relies on.
    What cannot be read with your permissions is "not checked". Exit 1 if anything is wrong.
    """
    from events_infra.dlq.clients import alert_policy_client, sql_admin_clients
    from events_infra.dlq.doctor import diagnose
    from events_infra.local.stack import as_provisioned_locally

    with user_errors():
        ctx = context(stack, stacks_dir, project, None, None)
        expected, local_note = as_provisioned_locally(stack, ctx.topology, ctx.target.emulator)
        alerts, alerts_note = alert_policy_client()
        sql, sql_note = sql_admin_clients(ctx.topology)
        with ctx.errors("the stack's topics and subscriptions"):
            findings = diagnose(
                ctx.publisher,
                ctx.subscriber,
                ctx.target,
                expected,
                check_iam=ctx.target.emulator is None,
                alerts=alerts,
                alerts_note=alerts_note,
                sql=sql,
                sql_note=sql_note,
            )
    rows = [vars(f) for f in findings]
    problems = [f for f in findings if f.ok is False]

    def human(data: list[dict[str, Any]]) -> None:
        table(
            f"dlq doctor ({stack})",
            ["", "check", "resource", "detail"],
            [[_mark(r["ok"]), r["check"], _short(r["resource"], ctx.target.project), r["detail"]]
             for r in data if r["ok"] is not True or verbose],
        )  # fmt: skip
        if ctx.target.emulator:
            typer.echo("IAM checks skipped: the emulator has no IAM", err=True)
        if local_note:
            typer.echo(local_note, err=True)
        unchecked = sum(1 for f in findings if f.ok is None)
        passed = len(findings) - len(problems) - unchecked
        shown = "" if verbose else " (--all lists them)"
        typer.echo(f"{len(problems)} problem(s) found, {unchecked} not checked, {passed} "
                   f"check(s) passed{shown}", err=True)  # fmt: skip

    emit(rows, as_json, human)
    unread = fail_unchecked and any(f.ok is None for f in findings)
    raise typer.Exit(int(Exit.FOUND if problems else Exit.UNCHECKED if unread else Exit.OK))


def _short(resource: str, project: str) -> str:
    """A resource's last name when it is in the stack's project; its whole path otherwise
    (another team's subscription lives in its own project: say which)."""
    if resource.startswith(f"projects/{project}/"):
        return resource.rsplit("/", 1)[-1]
    return resource


def _mark(ok: bool | None) -> str:
    return "-" if ok is None else "ok" if ok else "FAIL"
