"""One renderer for human and `--json` output: data on stdout, messages on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any


def emit(data: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    """Print `data` as JSON (for scripts) or through `human` (for people)."""
    if as_json:
        json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
        sys.stdout.write("\n")
    else:
        human(data)


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """A rich table on stdout (rich is imported only when a table is actually drawn)."""
    from rich.console import Console
    from rich.table import Table

    out = Table(title=title)
    for column in columns:
        out.add_column(column)
    for row in rows:
        out.add_row(*(str(cell) for cell in row))
    Console().print(out)


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)] if c not in (0x09,)}


def printable(value: object) -> str:
    """`value` as text safe for a terminal: control characters (ESC sequences that would move
    the cursor, rewrite the screen or set the title) shown as \\xNN. For strings anyone with
    publish rights wrote: attributes, ordering keys, forged dead-letter bookkeeping."""
    return str(value).translate(_CONTROL)
