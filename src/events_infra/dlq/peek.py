"""`inspect` and `export`: read dead letters without consuming them (each is released at once)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from events_infra.dlq.messages import DeadLetter
from events_infra.dlq.scan import PREFETCH_BATCHES, Scanner
from events_infra.dlq.selection import Selection


@dataclass
class Coverage:
    """A backlog count to read up to (`expected`), and what the scan then could not vouch for."""

    expected: int | None = None
    possibly_remaining: int | None = None


def peek(
    subscriber: Any,
    subscription: str,
    selection: Selection,
    limit: int | None,
    on_letter: Callable[[DeadLetter], None],
    batch_size: int = 100,
    pull_timeout: float = 2.0,
    coverage: Coverage | None = None,
) -> int:
    """Call `on_letter` for up to `limit` selected dead letters; leave every message in place.

    With `coverage.expected` (the DLQ's size) the scan keeps looking until it has seen that many
    or its budget runs out, and sets `coverage.possibly_remaining` (pulls can come back short).
    """
    expected = coverage.expected if coverage is not None else None
    scanner = Scanner(subscriber, subscription, batch_size, pull_timeout, expected=expected)
    found = 0
    for batch in scanner.batches(prefetch=PREFETCH_BATCHES):
        for letter in batch:
            if (limit is None or found < limit) and selection.matches(letter):
                on_letter(letter)
                found += 1
        scanner.release(batch)
        if limit is not None and found >= limit:
            break
    else:
        if coverage is not None:
            coverage.possibly_remaining = scanner.possibly_remaining
    return found


def inspect_letters(
    subscriber: Any, subscription: str, selection: Selection, limit: int | None, **kw: Any
) -> list[DeadLetter]:
    letters: list[DeadLetter] = []
    peek(subscriber, subscription, selection, limit, letters.append, **kw)
    return letters


def export_letters(
    subscriber: Any,
    subscription: str,
    selection: Selection,
    limit: int | None,
    path: Path,
    **kw: Any,
) -> list[str]:
    """Write selected dead letters to `path` as JSONL (one record per line); return their ids.

    Written to a temporary file and renamed, so an interrupted export never leaves a partial
    file that `purge --exported` would trust.
    """
    from events_infra.dlq.private_files import replaced_atomically

    ids: list[str] = []
    with replaced_atomically(path) as out:  # 0600: it holds whole payloads

        def write(letter: DeadLetter) -> None:
            out.write(json.dumps(letter.to_record(), sort_keys=True) + "\n")
            ids.append(letter.message_id)

        peek(subscriber, subscription, selection, limit, write, **kw)
    return ids


def read_export(path: Path) -> list[dict[str, Any]]:
    """Records of an export file; ValueError names the first bad line."""
    records = []
    with path.open(encoding="utf-8") as source:
        for number, line in enumerate(source, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as err:
                raise ValueError(f"{path}:{number}: not JSON ({err})") from None
            if not isinstance(record, dict) or "message_id" not in record:
                raise ValueError(f"{path}:{number}: not an exported dead letter (no message_id)")
            records.append(record)
    return records
