"""Exit codes and the one-line error path every command shares.

Errors a user can fix (bad config, unknown stack or subscription, unreachable service) print one
line per problem on stderr saying what is wrong and how to fix it, and exit non-zero: never a
traceback at 3 a.m.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from enum import IntEnum

import typer

from events_infra.db.cloud_sql import NOT_YET_PERMITTED_EXIT
from events_infra.errors import EventsInfraError


class Exit(IntEnum):
    """Named exit codes: 1 is reserved for "the check ran and found a problem" (cron, CI)."""

    OK = 0
    FOUND = 1
    ERROR = 2
    UNCHECKED = 3
    """`dlq doctor --fail-unchecked`: nothing wrong was found, but something could not be read
    (a scheduled drift check must not pass because its identity may not look)."""
    NOT_YET_PERMITTED = NOT_YET_PERMITTED_EXIT
    """IAM refused (yet): `outbox migrate` in the migration job, whose runner tries again for a
    bounded time, since IAM changes take minutes to propagate (components.migration_job)."""


class UserError(EventsInfraError):
    """A problem the user can fix; its message is printed as-is, without a traceback."""


def fail(message: str, code: Exit = Exit.ERROR) -> typer.Exit:
    """Print `message` (one or more lines) as errors on stderr; return the Exit to raise."""
    for line in str(message).splitlines() or ["unknown error"]:
        print(f"error: {line}", file=sys.stderr)
    return typer.Exit(int(code))


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn every error a user can fix (the `EventsInfraError` family, raised by any library of
    the project) into clean one-line failures with exit code 2."""
    try:
        yield
    except EventsInfraError as err:
        raise fail(str(err)) from None
