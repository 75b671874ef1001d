"""How far behind the outbox is: what `eventsctl outbox status` reports and alerts on."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from events_infra.outbox.queries import STATUS_SQL


@dataclass(frozen=True)
class OutboxStatus:
    backlog: int
    """Committed or in-flight rows not yet published."""
    oldest_unpublished_age_s: float | None
    """Age of the oldest unpublished row; None when the backlog is empty."""
    failing: int
    """Unpublished rows that have failed at least one publish attempt."""
    failed_for_good: int
    """Rows moved to event_outbox_failed."""
    last_error: str | None = None
    """Why the oldest failing row failed: Pub/Sub's refusal, or the outage the relay met."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_status(conn: Any) -> OutboxStatus:
    """Read the outbox's backlog figures in one round trip (every count uses a partial index)."""
    with conn.cursor() as cur:
        cur.execute(STATUS_SQL)
        backlog, oldest, failing, failed, last_error = cur.fetchone()
    conn.rollback()
    return OutboxStatus(
        backlog=int(backlog),
        oldest_unpublished_age_s=float(oldest) if oldest is not None else None,
        failing=int(failing),
        failed_for_good=int(failed),
        last_error=last_error,
    )
