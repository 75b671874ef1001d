"""What the consumer library logs for a poison event, and the log-based metric the stack
counts it with.

The library nacks a poison event and Pub/Sub dead-letters it after max_delivery_attempts, so
Pub/Sub's `subscription/dead_letter_message_count` sees it like any other failure. To tell
events that can never succeed from handlers that keep failing, the library logs one structured
line on the last delivery of each (`event`, `subscription` and the event's ids, as JSON: Cloud
Logging reads a JSON line on stdout/stderr as `jsonPayload`), and the stack declares a
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
