"""The DLQ library's own errors: what went wrong, in one line a person can act on."""

from __future__ import annotations

from events_infra.errors import EventsInfraError


class DlqError(EventsInfraError):
    """A problem the caller can fix (unknown subscription, bad filter, Pub/Sub unreachable,
    missing credentials, ...). The message is one line, ready to show as is."""
