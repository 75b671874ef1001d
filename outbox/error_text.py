"""One line of an error, for log lines, summaries and one-line CLI errors.

Shared by the relay, the migration runner, the relay's metrics, the consumer library and the CLI
(`cli.errors.first_line`), so every place reports an error the same way.
"""

from __future__ import annotations


def first_line(err: BaseException, limit: int | None = None) -> str:
    """The first line of an error's message (its type name when it has none), at most `limit`
    characters."""
    text = str(err).strip()
    line = text.splitlines()[0].strip() if text else type(err).__name__
    return line[:limit] if limit is not None else line
