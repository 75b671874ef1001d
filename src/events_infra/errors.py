"""The one error base of events-infra, and the one way an error is reported on one line.

Every error a person can fix (bad config, an unknown stack or subscription, an unreachable
service, a refused migration) derives from `EventsInfraError`, whose message is one line saying
what is wrong and how to fix it. `eventsctl` maps the whole family to exit code 2 without a
traceback (`events_infra.cli.errors.user_errors`); a script catches the one base class.

`first_line` is shared by the relay, the migration runner, the relay's metrics, the consumer
library and the CLI, so every place reports an error the same way.
"""

from __future__ import annotations


class EventsInfraError(Exception):
    """A problem the user can fix; its message is printed as-is, without a traceback."""


def first_line(err: BaseException, limit: int | None = None) -> str:
    """The first line of an error's message (its type name when it has none), at most `limit`
    characters."""
    text = str(err).strip()
    line = text.splitlines()[0].strip() if text else type(err).__name__
    return line[:limit] if limit is not None else line
