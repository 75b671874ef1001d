"""`eventsctl local` and `eventsctl demo`: the backbone on this machine (emulator + PostgreSQL)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import typer

from events_infra.cli import options
from events_infra.cli.errors import Exit, UserError, user_errors
from events_infra.cli.render import emit

app = typer.Typer(
    help="Run the stack locally: the Pub/Sub emulator and an embedded PostgreSQL.",
    no_args_is_help=True,
)


def _load(stack: str, stacks_dir: str | None) -> Any:
    from events_infra.stack_config.stack_files import load_stack
    from events_infra.stack_config.stack_files import stacks_dir as find_dir

    return load_stack(stack, find_dir(stacks_dir))


def _up(
    stack: str,
    stacks_dir: str | None,
    pubsub_port: int | None,
    keep_backoff: bool,
    strict: bool = True,
) -> Any:
    from events_infra.local.stack import LocalError, up

    topology = _load(stack, stacks_dir)
    try:
        state, steps = up(
            stack,
            topology,
            pubsub_port=pubsub_port,
            shorten_backoff=not keep_backoff,
            strict=strict,
        )
    except LocalError as err:
        raise UserError(str(err)) from None
    return topology, state, steps


@app.command("up")
def up_command(
    stack: str = options.STACK,
    stacks_dir: str = options.STACKS_DIR,
    pubsub_port: int = typer.Option(
        None,
        "--pubsub-port",
        help="Port clients use: the strict proxy's, or the emulator's with --no-strict "
        "(default: a free one).",
    ),
    keep_backoff: bool = typer.Option(
        False, "--keep-backoff", help="Keep the stack's retry backoff instead of 0.1–1 s."
    ),
    strict: bool = typer.Option(
        True,
        "--strict/--no-strict",
        help="Put the strict proxy in front of the emulator, so Pub/Sub refuses here what "
        "Google Cloud refuses (default) — or use the bare emulator.",
    ),
) -> None:
    """Start (or reuse) the emulator and PostgreSQL, create the stack's topics and
    subscriptions, apply the outbox schema. Running it twice changes nothing."""
    from events_infra.local.stack import env_path

    with user_errors():
        _, state, steps = _up(stack, stacks_dir, pubsub_port, keep_backoff, strict)
    for step in steps:
        typer.echo(f"✓ {step}")
    kind = "Pub/Sub (strict)" if state.pubsub_host != state.emulator_host else "Pub/Sub emulator"
    typer.echo(f"\n{kind:<17} {state.pubsub_host}   (project {state.project})")
    typer.echo(f"PostgreSQL        {state.database_url}")
    typer.echo(f"\nPoint other commands at it:  source {env_path()}")
    typer.echo(
        f"State: {env_path().parent} (one local stack per directory; EVENTSCTL_LOCAL_DIR picks "
        "another)"
    )


@app.command("down")
def down_command() -> None:
    """Stop what `local up` started here (and nothing else)."""
    from events_infra.local.stack import down

    for step in down():
        typer.echo(step)


@app.command("status")
def status_command(as_json: bool = options.JSON) -> None:
    """What local mode runs here, and whether it answers. Exit 1 when not running."""
    from events_infra.local.stack import status

    data = status()

    def human(d: dict[str, Any]) -> None:
        if not d.get("stack"):
            typer.echo("local mode is not running here (eventsctl local up)")
            return
        for part in ("pubsub", "postgres"):
            info = d[part]
            where = info.get("host") or info.get("url")
            state = "answers" if info["answers"] else "NOT ANSWERING"
            owner = "started by local up" if info["ours"] else "external"
            typer.echo(f"{part:<9} {where}  {state} ({owner})")
        typer.echo(f"stack {d['stack']}; settings in {d['env_file']}")

    emit(data, as_json, human)
    raise typer.Exit(int(Exit.OK if data["running"] else Exit.FOUND))


@app.command("env")
def env_command() -> None:
    """Print the shell exports for the running local stack: eval "$(eventsctl local env)"."""
    from events_infra.local.stack import env_lines, read_state

    state = read_state()
    if state is None:
        with user_errors():
            raise UserError("local mode is not running here: run `eventsctl local up` first")
    for line in env_lines(state):
        typer.echo(line)


def demo_command(
    stack: str = options.STACK,
    stacks_dir: str = options.STACKS_DIR,
    keep: bool = typer.Option(False, "--keep", help="Leave the local stack running afterwards."),
    as_json: bool = options.JSON,
) -> None:
    """Watch the whole backbone work locally: outbox → relay → consumer failures → dead
    letters → alert → targeted replay → every event processed. Exit 0 only if all were."""
    from rich.console import Console

    from events_infra.local.demo import DemoError, run_demo
    from events_infra.local.stack import LOCAL_DIR_ENV, down

    console = Console(stderr=as_json)
    # The demo runs on a stack of its own (own emulator, proxy and PostgreSQL in a temp dir),
    # never on a local stack you have running: it drains and acknowledges messages.
    demo_dir = Path(tempfile.mkdtemp(prefix="eventsctl-demo-stack-"))
    saved = {k: os.environ.pop(k, None) for k in ("PUBSUB_EMULATOR_HOST", "DATABASE_URL")}
    saved[LOCAL_DIR_ENV] = os.environ.get(LOCAL_DIR_ENV)
    os.environ[LOCAL_DIR_ENV] = str(demo_dir)
    try:
        with user_errors():
            topology, state, steps = _up(stack, stacks_dir, None, keep_backoff=False)
            for step in steps:
                console.print(f"[green]✓[/] {step}")
            try:
                result = run_demo(state, topology, lambda text: console.print(f"[cyan]▶[/] {text}"))
            except DemoError as err:
                raise UserError(f"demo failed: {err}") from None
            finally:
                if not keep:
                    for line in down():
                        console.print(f"[dim]{line}[/]")
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if keep:
            console.print(f"demo stack left running: EVENTSCTL_LOCAL_DIR={demo_dir} "
                          "eventsctl local down  stops it")  # fmt: skip
        else:
            shutil.rmtree(demo_dir, ignore_errors=True)
    data = {k: v for k, v in vars(result).items() if k != "stages"} | {"ok": result.ok}
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        verdict = "[bold green]every event processed[/]" if result.ok else "[bold red]FAILED[/]"
        console.print(
            f"\n{verdict}: {result.processed}/{result.events} events, {result.dead_lettered} "
            f"dead-lettered and {result.replayed} replayed, in {result.seconds:.0f} s"
        )
    raise typer.Exit(int(Exit.OK if result.ok else Exit.FOUND))
