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
) -> None:
    """Check the live Pub/Sub setup against the stack file.

    Names each silent failure: missing dead-letter policy, wrong attempts or backoff, a
    dead-letter topic without subscription, subscriptions that will expire, short retention,
    wrong replay filters and (on real GCP) missing service-agent grants. Exit 1 if any.
    """
    from events_infra.dlq.doctor import diagnose
    from events_infra.local.stack import as_provisioned_locally

    with user_errors():
        ctx = context(stack, stacks_dir, project, None, None)
        expected, local_note = as_provisioned_locally(stack, ctx.topology, ctx.target.emulator)
        with ctx.errors("the stack's topics and subscriptions"):
            findings = diagnose(
                ctx.publisher,
                ctx.subscriber,
                ctx.target,
                expected,
                check_iam=ctx.target.emulator is None,
            )
    rows = [vars(f) for f in findings]
    problems = [f for f in findings if f.ok is False]

    def human(data: list[dict[str, Any]]) -> None:
        table(
            f"dlq doctor ({stack})",
            ["", "check", "resource", "detail"],
            [[_mark(r["ok"]), r["check"], r["resource"].rsplit("/", 1)[-1], r["detail"]]
             for r in data],
        )  # fmt: skip
        if ctx.target.emulator:
            typer.echo("IAM checks skipped: the emulator has no IAM", err=True)
        if local_note:
            typer.echo(local_note, err=True)
        typer.echo(f"{len(problems)} problem(s) found", err=True)

    emit(rows, as_json, human)
    raise typer.Exit(int(Exit.FOUND if problems else Exit.OK))


def _mark(ok: bool | None) -> str:
    return "-" if ok is None else "ok" if ok else "FAIL"
