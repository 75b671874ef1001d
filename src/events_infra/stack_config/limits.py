"""Every limit and default that more than one part of the project must agree on, in one place.

The config model (stack_config/*_config.py, topology.py), the components, local mode
(events_infra.local.stack) and the policy pack's per-stack config (policy/config.<stack>.json,
written by `policy_config`) all read these, and tests/test_limits.py proves the committed policy
config and the pack's fallbacks say the same. Pulumi-free: the CLI imports it.
"""

from __future__ import annotations

from typing import Any

# Subscriptions: the brief's backbone (and the policy pack) — dead-letter after 5 attempts,
# retry with 10–600 s backoff. Pub/Sub itself allows 0–600 s and 5–100 attempts; a stack below
# the policy's floor would pass the model and fail the pack, so the model uses the policy's range.
DEFAULT_MAX_DELIVERY_ATTEMPTS = 5
MIN_DELIVERY_ATTEMPTS, MAX_DELIVERY_ATTEMPTS = 5, 100
MIN_BACKOFF_S, MAX_BACKOFF_S = 10.0, 600.0
DEFAULT_MIN_BACKOFF_S, DEFAULT_MAX_BACKOFF_S = 10.0, 600.0

LOCAL_BACKOFF_S = (0.1, 1.0)
"""Retry backoff as local mode provisions it on the emulator: five failed deliveries
dead-letter in seconds, not minutes (the stack file's values apply in the cloud)."""

# Cloud Monitoring: condition durations are whole minutes ("only values that are a multiple of a
# minute ... are supported", the AlertPolicy condition reference); `90s` fails at `pulumi up`.
ALERT_DURATION_STEP_S = 60

# Cloud SQL editions (pulumi_gcp sql DatabaseInstanceSettings.edition): unset, PostgreSQL 16+
# defaults to ENTERPRISE_PLUS, which accepts only db-perf-optimized-N-* tiers, so the shared-core
# and custom tiers the stacks use fail at create. The model always sets it.
DEFAULT_SQL_EDITION = "ENTERPRISE"
SQL_EDITIONS = ("ENTERPRISE", "ENTERPRISE_PLUS")


# Floors the policy pack holds a stack to: a production stack keeps a week of backups, of
# point-in-time recovery and of dead letters (the on-call runbook's week to replay); any stack
# keeps at least a day of each.
MIN_RETAINED_BACKUPS = {True: 7, False: 1}
MIN_LOG_RETENTION_DAYS = {True: 7, False: 1}
MIN_DLQ_RETENTION_S = {True: 7 * 86400.0, False: 86400.0}


def policy_config(production: bool) -> dict[str, Any]:
    """The policy pack's config for a stack (`--policy-pack-config policy/config.<stack>.json`)."""
    return {
        "cloudsql-backups-and-protection": {
            "production": production,
            "minRetainedBackups": MIN_RETAINED_BACKUPS[production],
            "minLogRetentionDays": MIN_LOG_RETENTION_DAYS[production],
        },
        "dead-letter-retention": {"minRetentionSeconds": MIN_DLQ_RETENTION_S[production]},
        "subscription-dead-letter-policy": {
            "defaultMaxDeliveryAttempts": DEFAULT_MAX_DELIVERY_ATTEMPTS,
            "minDeliveryAttempts": MIN_DELIVERY_ATTEMPTS,
            "maxDeliveryAttempts": MAX_DELIVERY_ATTEMPTS,
        },
        "subscription-retry-policy": {
            "minBackoffSeconds": MIN_BACKOFF_S,
            "maxBackoffSeconds": MAX_BACKOFF_S,
        },
    }
