"""Cloud Monitoring metric names for Pub/Sub and the filter for one subscription's series.

Pulumi-free, so the alert policies (components/alerting.py) and `eventsctl dlq status` read the
same names without the CLI importing Pulumi.
"""

from __future__ import annotations

UNDELIVERED = "pubsub.googleapis.com/subscription/num_undelivered_messages"
OLDEST_UNACKED = "pubsub.googleapis.com/subscription/oldest_unacked_message_age"
DEAD_LETTERED = "pubsub.googleapis.com/subscription/dead_letter_message_count"
PUBLISHED = "pubsub.googleapis.com/topic/send_message_operation_count"


def subscription_filter(project: str, subscription: str, metric: str) -> str:
    """The exact-match filter for one subscription's metric (no prefix matching)."""
    return (
        f'resource.type = "pubsub_subscription" AND '
        f'resource.labels.project_id = "{project}" AND '
        f'resource.labels.subscription_id = "{subscription}" AND '
        f'metric.type = "{metric}"'
    )
