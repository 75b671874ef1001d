"""The `eventsctl` reference in docs/cli.md, generated from the Typer app, and `make docs`.

Every group and command of `events_infra.cli.app:app` is read through click's introspection
(`typer.main.get_command`): its help text, usage, arguments and options with their help,
defaults and environment variables. Nothing goes through a help formatter, so the output does
not depend on the terminal's width, and nothing depends on this machine.

    python -m events_infra.cli.reference            # print both generated blocks
    python -m events_infra.cli.reference --write    # rewrite them in docs/ (`make docs`)
    python -m events_infra.cli.reference --check    # exit 1 if docs/ is out of date

The stack-config block comes from `events_infra.stack_config.reference` (the CLI may import the
stack model; the model never imports the CLI).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from events_infra.stack_config.reference import (
    generated_block,
    replace_generated,
    stack_config_reference,
)

ROOT_NAME = "eventsctl"


def cli_reference() -> str:
    """Markdown for every command and group of `eventsctl`, depth first, in the app's order."""
    import typer.main

    from events_infra.cli.app import app

    root = typer.main.get_command(app)
    context = root.context_class(root, info_name=ROOT_NAME)
    intro = (
        "Every command also takes `--help`. Options are listed as `--help` shows them, "
        "with the type Typer gives each value.\n"
    )
    return "\n".join([intro, *_sections(root, context, ROOT_NAME)])


def _sections(command: Any, context: Any, path: str) -> Iterator[str]:
    lines = [f"### `{path}`", "", f"`{_usage(command, path)}`", ""]
    if command.help:
        lines += [_text(p) + "\n" for p in _paragraphs(command.help)]
    arguments = [p for p in command.params if _is_argument(p) and not _hidden(p)]
    options = [p for p in command.params if not _is_argument(p) and not _hidden(p)]
    if arguments:
        lines += _table(["argument", "default", "description"], arguments, context, env=False)
    if options:
        lines += _table(["option", "default", "env var", "description"], options, context)
    subcommands = _subcommands(command, context)
    if subcommands:
        lines += ["| command | description |", "|---|---|"]
        for name, sub in subcommands:
            short = sub.get_short_help_str(limit=10_000)
            lines.append(f"| [`{path} {name}`](#{_anchor(f'{path} {name}')}) | {_cell(short)} |")
        lines.append("")
    yield "\n".join(lines)
    for name, sub in subcommands:
        yield from _sections(
            sub, sub.context_class(sub, info_name=name, parent=context), f"{path} {name}"
        )


def _subcommands(command: Any, context: Any) -> list[tuple[str, Any]]:
    if not hasattr(command, "list_commands"):
        return []
    found = [(n, command.get_command(context, n)) for n in command.list_commands(context)]
    return [(n, c) for n, c in found if c is not None and not c.hidden]


def _usage(command: Any, path: str) -> str:
    pieces = [path, "[OPTIONS]"]
    for param in command.params:
        if _is_argument(param) and not _hidden(param):
            name = (param.metavar or param.name or "").upper()
            name += "..." if param.nargs == -1 else ""
            pieces.append(name if param.required else f"[{name}]")
    if hasattr(command, "list_commands"):
        pieces.append("COMMAND [ARGS]...")
    return " ".join(pieces)


def _table(header: list[str], params: list[Any], context: Any, env: bool = True) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for param in params:
        cells = [f"`{_declaration(param, context)}`", _default(param)]
        if env:
            cells.append(_envvar(param))
        cells.append(_text(" ".join((param.help or "").split())) if hasattr(param, "help") else "")
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return [*lines, ""]


def _declaration(param: Any, context: Any) -> str:
    """`-s, --stack <str>` as `--help` shows it (click's help record, without the help)."""
    record = param.get_help_record(context)
    if record:
        return str(record[0])
    return (param.metavar or param.name or "").upper()


def _default(param: Any) -> str:
    if param.required:
        return "required"
    show = getattr(param, "show_default", None)
    if isinstance(show, str):
        return show
    if show is False:
        return ""
    value = param.default
    if callable(value):
        return "computed"
    if getattr(param, "is_flag", False):
        if param.secondary_opts:
            return f"`{param.opts[-1] if value else param.secondary_opts[-1]}`"
        return "`on`" if value else ""
    if value is None or value == () or value == []:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(f"`{v}`" for v in value)
    return f"`{value}`"


def _envvar(param: Any) -> str:
    names = param.envvar
    if not names:
        return ""
    return ", ".join(f"`{n}`" for n in ([names] if isinstance(names, str) else names))


def _is_argument(param: Any) -> bool:
    return getattr(param, "param_type_name", "") == "argument"


def _hidden(param: Any) -> bool:
    return bool(getattr(param, "hidden", False))


def _paragraphs(text: str) -> list[str]:
    """Help text paragraphs, each on one line (click's `\\b` no-rewrap markers dropped)."""
    text = text.replace("\b\n", "").replace("\b", "")
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


def _text(text: str) -> str:
    """Markdown for help text: `<` and `*` escaped outside code spans, so nothing is read as
    HTML or emphasis."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = re.sub(r"([<*])", r"\\\1", parts[i])
    return "`".join(parts)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _anchor(heading: str) -> str:
    """GitHub's anchor for a `### \\`heading\\`` line."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


# --- make docs ----------------------------------------------------------------------------------

BLOCKS: dict[str, tuple[str, Callable[[], str]]] = {
    "cli": ("cli.md", cli_reference),
    "stack-config": ("stack-config.md", stack_config_reference),
}
"""Generated block name -> (its file in docs/, the function that writes it)."""


def stale_blocks(docs: Path) -> list[str]:
    """The docs/ files whose generated block differs from what the code generates."""
    stale = []
    for name, (filename, generate) in BLOCKS.items():
        if generated_block((docs / filename).read_text(), name) != generate():
            stale.append(f"docs/{filename} ({name})")
    return stale


def write_blocks(docs: Path) -> list[str]:
    """Rewrite every generated block in place; the files that changed."""
    changed = []
    for name, (filename, generate) in BLOCKS.items():
        path = docs / filename
        text = path.read_text()
        updated = replace_generated(text, name, generate())
        if updated != text:
            path.write_text(updated)
            changed.append(f"docs/{filename}")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m events_infra.cli.reference",
        description="The generated references in docs/: print, rewrite or check them.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the blocks in docs/")
    mode.add_argument("--check", action="store_true", help="exit 1 if docs/ is out of date")
    parser.add_argument("--docs", type=Path, default=Path("docs"), help="the docs folder")
    args = parser.parse_args(argv)
    if args.write:
        changed = write_blocks(args.docs)
        print("updated: " + ", ".join(changed) if changed else "docs are up to date")
        return 0
    if args.check:
        stale = stale_blocks(args.docs)
        if stale:
            print(f"out of date: {', '.join(stale)}; run `make docs`", file=sys.stderr)
            return 1
        return 0
    for name, (_, generate) in BLOCKS.items():
        print(f"<!-- {name} -->\n{generate()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
