"""`eventsctl adopt`: bring a running estate under the stack without losing a message."""

from __future__ import annotations

from typing import Any

import typer

from events_infra.cli import options
from events_infra.cli.errors import Exit, user_errors
from events_infra.cli.render import emit, table

app = typer.Typer(help="Adopt existing topics and subscriptions into a stack (before pulumi up).")


@app.command("plan")
def plan_command(
    stack: str = options.STACK,
    stacks_dir: str = options.STACKS_DIR,
    out: str = typer.Option(
        None,
        "--out",
        help="Write a `pulumi import --file` document for the resources that exist.",
        show_default=False,
    ),
    as_json: bool = options.JSON,
) -> None:
    """Compare what the stack declares with what exists in its project, before the first
    `pulumi up` on a running estate.

    Lists each declared topic, subscription, outbox Cloud SQL instance and database and
    service account as absent (up creates it) or existing (import it first), each difference as
    applied in place, needing
    a migration (GCP would replace the resource and drop its backlog), losing data in place (a
    lower retention) or a prerequisite (an `existing` database the stack relies on lacks what
    it needs), and the subscriptions on the topic the stack does not declare. Exit 1, and no
    import file, when something would lose data or fail; 0 when everything can be adopted.
    """
    from events_infra.adopt.plan import plan_stack

    with user_errors():
        plan = plan_stack(stack, stacks_dir, out)
    emit(plan.to_dict(), as_json, lambda d: _print(d, out))
    raise typer.Exit(int(Exit.FOUND if plan.blocked else Exit.OK))


def _print(plan: dict[str, Any], out: str | None) -> None:
    from events_infra.adopt.model import MIGRATION, PREREQUISITE

    rows = []
    for r in plan["resources"]:
        state = r["state"] if r["managed"] else f"{r['state']} (relied on, not managed)"
        rows.append([r["id"], state, "" if r["differences"] else "-"])
        for d in r["differences"]:
            rows.append(["", "", f"{d['field']}: {d['live']} -> {d['declared']} ({d['change']})"])
    table(
        f"adopt plan: stack {plan['stack']} ({plan['project']})",
        ["resource", "state", "change"],
        rows,
    )
    for r in plan["resources"]:
        for d in r["differences"]:
            if d["how"] and d["change"] == PREREQUISITE:
                typer.echo(f"{r['id']}: {d['field']} must be fixed first: {d['how']}", err=True)
            elif d["how"] and d["change"] == MIGRATION:
                typer.echo(f"{r['id']}: {d['field']} cannot change in place: {d['how']}", err=True)
    for what in plan["not_read"]:
        typer.echo(f"not checked: {what}", err=True)
    for path in plan["undeclared_subscriptions"]:
        typer.echo(
            f"not in the stack: {path} keeps receiving every message on the topic; "
            "pulumi never touches it",
            err=True,
        )
    existing = sum(1 for r in plan["resources"] if r["state"] == "exists")
    if out and plan["needs_migration"]:
        typer.echo(
            f"no import file written to {out}: resolve the changes marked migration or "
            "'loses data' first (importing now would let the next pulumi up lose messages)",
            err=True,
        )
    elif out and existing:
        typer.echo(
            f"import file: {out} ({existing} resources): pulumi import --file {out}", err=True
        )
