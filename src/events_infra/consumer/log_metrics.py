"""What the consumer library logs when it dead-letters a poison event itself, and the
log-based metric the stack counts it with.

Pub/Sub's `subscription/dead_letter_message_count` (what the per-subscription dead-letter alert
watches) counts only what Pub/Sub forwards after max_delivery_attempts. A poison event the
library copies to the dead-letter topic and acknowledges is invisible to it, so the library
logs one structured line per such event (`event`, `subscription` and the event's ids, as JSON:
Cloud Logging reads a JSON line on stdout/stderr as `jsonPayload`), and the stack declares a
log-based counter over those lines, labelled by subscription, beside Pub/Sub's count in each
dead-letter alert (components.alerting).

Pulumi-free: the consumer writes the line, the alerting component reads the names from here.
"""

from __future__ import annotations

POISON_LOGGED = "poison_dead_lettered"
"""The `event` field of the line the library logs for each poison event it dead-letters."""
METRIC_NAME = "events_infra/consumer_dead_letters"
"""The log-based metric's name (projects/P/metrics/...)."""
METRIC_TYPE = f"logging.googleapis.com/user/{METRIC_NAME}"
SUBSCRIPTION_LABEL = "subscription"


def log_filter() -> str:
    """The Cloud Logging filter the metric counts."""
    return f'jsonPayload.event="{POISON_LOGGED}"'


def subscription_filter(subscription: str) -> str:
    """The Monitoring filter for one subscription's library dead letters."""
    return (
        f'metric.type = "{METRIC_TYPE}" AND metric.labels.{SUBSCRIPTION_LABEL} = "{subscription}"'
    )
