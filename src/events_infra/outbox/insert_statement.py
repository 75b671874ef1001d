"""The one INSERT every writer sends, rendered for each driver's parameter style.

A single statement per call (up to `ROWS_PER_STATEMENT` rows) keeps a write at one round trip:
the table's triggers (migration 0003) take the key locks, draw `seq` in commit order and send the
NOTIFY, so the writer adds nothing beyond the INSERT a service would write by hand.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any, Literal

from events_infra.outbox.event_validation import COLUMNS

ROWS_PER_STATEMENT = 1000
"""8 parameters a row: 8,000 stays well under asyncpg's and PostgreSQL's 32,767 bind limit."""

ParamStyle = Literal["format", "numeric", "named"]
_CASTS = {"payload": "jsonb", "attributes": "jsonb"}


def _placeholder(style: ParamStyle, index: int, column: str) -> str:
    cast = _CASTS.get(column)
    if style == "format":
        return f"%s::{cast}" if cast else "%s"
    if style == "numeric":
        return f"${index + 1}::{cast}" if cast else f"${index + 1}"
    name = f":p{index}"  # SQLAlchemy text(): `::` would be read as a bind, so CAST()
    return f"CAST({name} AS {cast})" if cast else name


@functools.lru_cache(maxsize=64)
def insert_sql(row_count: int, style: ParamStyle) -> str:
    """`INSERT INTO event_outbox (...) VALUES (...), ...` for `row_count` rows (built once per
    shape: a service writes the same one-row statement on every request)."""
    values = []
    for row in range(row_count):
        base = row * len(COLUMNS)
        values.append(
            "("
            + ", ".join(_placeholder(style, base + i, col) for i, col in enumerate(COLUMNS))
            + ")"
        )
    return f"INSERT INTO event_outbox ({', '.join(COLUMNS)}) VALUES " + ", ".join(values)


def statements(
    rows: list[tuple[Any, ...]], style: ParamStyle
) -> Iterator[tuple[str, list[Any] | dict[str, Any]]]:
    """(sql, parameters) per chunk of rows, in row order (so key locks stay in sorted order)."""
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start : start + ROWS_PER_STATEMENT]
        flat = [value for row in chunk for value in row]
        params: list[Any] | dict[str, Any] = (
            {f"p{i}": value for i, value in enumerate(flat)} if style == "named" else flat
        )
        yield insert_sql(len(chunk), style), params
