"""How many dead letters there are, since when, and from where.

Counts come from Cloud Monitoring (the metric the alert watches) when it is available; on the
emulator, which has no Monitoring, they come from Pub/Sub itself by walking the subscription
(every message is released at once), and the result says so.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from events_infra.dlq.peek import peek
from events_infra.dlq.selection import Selection
from events_infra.dlq.target import DlqTarget
from events_infra.pubsub.metrics import OLDEST_UNACKED, UNDELIVERED, subscription_filter
from events_infra.pubsub.paths import project_path

SOURCE_MONITORING = "cloud-monitoring"
SOURCE_PUBSUB = "pubsub"


def latest_metric(metrics: Any, project: str, subscription: str, metric: str) -> float | None:
    """The newest point of one subscription metric in the last 10 minutes, or None."""
    from google.cloud import monitoring_v3

    now = datetime.now(UTC)
    interval = monitoring_v3.TimeInterval(end_time=now, start_time=now - timedelta(minutes=10))
    series = metrics.list_time_series(
        request={
            "name": project_path(project),
            "filter": subscription_filter(project, subscription, metric),
            "interval": interval,
            "view": monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL,
        }
    )
    newest: tuple[datetime, float] | None = None
    for one in series:
        for point in one.points:
            when = point.interval.end_time
            value = point.value
            number = float(value.int64_value or value.double_value)
            if newest is None or when > newest[0]:
                newest = (when, number)
    return newest[1] if newest else None


def dlq_status(
    subscriber: Any,
    target: DlqTarget,
    metrics: Any | None,
    sample: int = 500,
    pull_timeout: float = 2.0,
) -> dict[str, Any]:
    """One row per dead-letter subscription (a stack has one)."""
    undelivered = oldest = None
    source = SOURCE_PUBSUB
    note = "Cloud Monitoring is not available here (emulator): counted from Pub/Sub itself"
    if metrics is not None:
        undelivered = latest_metric(
            metrics, target.project, target.dead_letter_subscription, UNDELIVERED
        )
        oldest = latest_metric(
            metrics, target.project, target.dead_letter_subscription, OLDEST_UNACKED
        )
        if undelivered is not None:
            source, note = SOURCE_MONITORING, "counts from Cloud Monitoring (as the alert sees)"
        else:
            note = "Cloud Monitoring has no recent data: counted from Pub/Sub itself"

    by_source: Counter[str] = Counter()
    earliest: datetime | None = None
    seen = 0

    def tally(letter: Any) -> None:
        nonlocal earliest, seen
        seen += 1
        by_source[letter.source_subscription or "(unknown)"] += 1
        if earliest is None or letter.dead_lettered_at < earliest:
            earliest = letter.dead_lettered_at

    walk_all = source == SOURCE_PUBSUB
    peek(
        subscriber,
        target.subscription_path,
        Selection(),
        None if walk_all else sample,
        tally,
        pull_timeout=pull_timeout,
    )
    if walk_all:
        undelivered = float(seen)
        oldest = (datetime.now(UTC) - earliest).total_seconds() if earliest else None
    count = int(undelivered or 0)
    return {
        "stack": target.stack,
        "project": target.project,
        "subscription": target.dead_letter_subscription,
        "undelivered": count,
        "oldest_age_s": round(oldest, 1) if oldest is not None else None,
        "threshold": target.threshold,
        "above_threshold": count > target.threshold,
        "by_source": dict(by_source.most_common()),
        "by_source_sampled": seen,
        "source": source,
        "note": note,
    }
