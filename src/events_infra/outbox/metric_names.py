"""The relay's Cloud Monitoring metrics: names, the monitored resource, and alert filters.

Pulumi-free, shared by the relay that writes them (events_infra.outbox.relay_metrics) and the alert
policies and dashboard that read them (components/alerting.py), so the two cannot drift.

Custom metrics on the `generic_task` resource (one series per relay instance, `task_id` = the
relay's id). Alerts reduce across instances (max), so an instance replaced by a new one does not
look like a relay that went silent.
"""

from __future__ import annotations

from events_infra.stack_config.pulumi_names import RELAY_SERVICE

PREFIX = "custom.googleapis.com/events_infra/outbox"
BACKLOG = f"{PREFIX}/backlog"
"""GAUGE INT64: committed events not yet published."""
OLDEST_UNPUBLISHED_AGE = f"{PREFIX}/oldest_unpublished_age"
"""GAUGE DOUBLE, seconds: how long the oldest unpublished event has waited (0 when none)."""
PUBLISHED = f"{PREFIX}/published_count"
"""CUMULATIVE INT64 per relay instance: events published since it started."""
PUBLISH_FAILURES = f"{PREFIX}/publish_failures"
"""CUMULATIVE INT64 per relay instance: failed publish attempts (retried or failed for good)."""

DESCRIPTORS: dict[str, tuple[str, str, str, str]] = {
    BACKLOG: ("GAUGE", "INT64", "1", "Committed outbox events not yet published"),
    OLDEST_UNPUBLISHED_AGE: (
        "GAUGE", "DOUBLE", "s", "Age of the oldest unpublished outbox event (0 when none)",
    ),
    PUBLISHED: ("CUMULATIVE", "INT64", "1", "Events published by this relay since it started"),
    PUBLISH_FAILURES: ("CUMULATIVE", "INT64", "1", "Failed publish attempts of this relay"),
}  # fmt: skip
"""metric -> (kind, value type, unit, description): what the relay writes and what the stack
declares as metric descriptors before the alerts that read them (an alert policy on a custom
metric that does not exist yet is refused with 404 "Cannot find metric(s)"; without a
descriptor it would exist only after the relay's first write)."""

RESOURCE_TYPE = "generic_task"
NAMESPACE = "events-infra"
JOB = RELAY_SERVICE
"""The `job` label of the first outbox's relay metrics: its Cloud Run service's name, as a
further outbox's relay reports as its own service, `outbox-relay-<name>`."""


def relay_filter(project: str, metric: str, job: str = JOB) -> str:
    """The exact filter for one relay metric of the relays of one outbox database."""
    return (
        f'resource.type = "{RESOURCE_TYPE}" AND resource.labels.project_id = "{project}" AND '
        f'resource.labels.namespace = "{NAMESPACE}" AND resource.labels.job = "{job}" AND '
        f'metric.type = "{metric}"'
    )
