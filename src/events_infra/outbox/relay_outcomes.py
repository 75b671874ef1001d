"""What becomes of each answered row: published, retried later (exponential backoff with
jitter), moved to `event_outbox_failed` for good, or given back untried; and whether a whole
settle looks like a Pub/Sub outage (what trips the relay's circuit breaker).

Pure decisions, no database: `outbox.relay` writes a `Settlement` in one short transaction."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from events_infra.errors import EventsInfraError, first_line
from events_infra.outbox.relay_config import RelayConfig
from events_infra.pubsub.key_publisher import NotAttempted


class PublishOutage(EventsInfraError):
    """Every publish of a batch failed with a transient error: Pub/Sub looks unreachable."""


def is_permanent(error: BaseException) -> bool:
    """Errors no retry will fix: the message itself is unacceptable (size, attributes)."""
    from google.api_core import exceptions as gexc

    return isinstance(error, gexc.InvalidArgument | ValueError | TypeError)


def backoff_seconds(attempt: int, config: RelayConfig) -> float:
    """Exponential backoff with full jitter in [50 %, 100 %] of the step."""
    step = min(config.backoff_max, config.backoff_base * (2 ** max(0, attempt - 1)))
    return step * random.uniform(0.5, 1.0)


def outage(rows: list[dict[str, Any]], outcomes: dict[Any, Any]) -> PublishOutage | None:
    """PublishOutage when nothing went out and every failure was transient, else None."""
    failures = [e for e in outcomes.values() if isinstance(e, BaseException)]
    tried = [e for e in failures if not isinstance(e, NotAttempted)]
    if len(failures) == len(rows) and tried and not any(map(is_permanent, tried)):
        return PublishOutage(
            f"Pub/Sub unreachable: {len(rows)} publishes failed: {first_line(tried[0], 500)}"
        )
    return None


@dataclass
class Settlement:
    """The rows of one settle, by what becomes of them (parallel lists, as the SQL takes them)."""

    published_ids: list[Any] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)
    retry_ids: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    bumps: list[int] = field(default_factory=list)
    fail_ids: list[Any] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    unlease_ids: list[Any] = field(default_factory=list)
    first_error: str | None = None


def settlement(
    rows: list[dict[str, Any]], outcomes: dict[Any, Any], count_attempt: bool, config: RelayConfig
) -> Settlement:
    """Each row's fate from its outcome (a message id or an error). `count_attempt` is False
    when Pub/Sub was down: the rows wait, their attempts not used up."""
    plan = Settlement()
    for row in rows:
        outcome = outcomes[row["id"]]
        if not isinstance(outcome, BaseException):
            plan.published_ids.append(row["id"])
            plan.message_ids.append(str(outcome))
            continue
        if isinstance(outcome, NotAttempted):
            plan.unlease_ids.append(row["id"])
            continue
        error = first_line(outcome, 500)
        if plan.first_error is None:
            plan.first_error = error
        attempt = row["retry_count"] + (1 if count_attempt else 0)
        if count_attempt and (is_permanent(outcome) or attempt >= config.max_attempts):
            plan.fail_ids.append(row["id"])
            plan.reasons.append(error)
            continue
        plan.retry_ids.append(row["id"])
        plan.errors.append(error)
        plan.delays.append(backoff_seconds(max(attempt, 1), config))
        plan.bumps.append(1 if count_attempt else 0)
    return plan
