"""One line of `dlq doctor`'s report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Finding:
    check: str
    resource: str
    detail: str
    ok: bool | None
    """None: could not be checked with the caller's permissions (not a problem found)."""
    change: str | None = None
    """For a setting that differs from the model: what restoring it means (live_diff's class:
    in place, in place but losing data, or a migration)."""


def drift_detail(found: Any) -> str:
    """A live_diff / live_sql Difference as doctor reports it."""
    how = f"; {found.how}" if found.how else ""
    return f"is {found.live}, the stack declares {found.declared} (putting it back: " \
        f"{found.change}{how})"  # fmt: skip
