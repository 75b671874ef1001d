"""Pub/Sub and Cloud Monitoring clients for `eventsctl dlq`, and the translation of their
failures into one-line errors an on-call engineer can act on."""

from __future__ import annotations

import os
from typing import Any

from events_infra.dlq.errors import DlqError
from events_infra.dlq.target import DlqTarget
from events_infra.pubsub.api_calls import google_errors, loopback_client, loopback_endpoint

MONITORING_ENDPOINT_ENV = "EVENTSCTL_MONITORING_ENDPOINT"
"""host:port of a Cloud Monitoring API to use instead of Google's (plaintext, loopback only)."""

PREFLIGHT_TIMEOUT_S = 10.0


def subscriber_client() -> Any:
    from google.cloud import pubsub_v1

    return pubsub_v1.SubscriberClient()


def publisher_client(endpoint: str | None = None) -> Any:
    """The Pub/Sub publisher API client (emulator-aware): replay sends one request per ordering
    key through it, with explicit deadlines (`outbox.key_publisher`). `endpoint`: the stack's
    locational endpoint, the one the relay publishes through: ordering holds only among
    publishes of a key in one region, so a replayed copy must not take another way in."""
    from events_infra.pubsub.key_publisher import make_publisher

    return make_publisher(endpoint)


def metrics_client() -> Any | None:
    """A Cloud Monitoring client, or None where there is none (the emulator has no Monitoring)."""
    endpoint = loopback_endpoint(MONITORING_ENDPOINT_ENV, DlqError)
    if endpoint:
        from google.cloud import monitoring_v3
        from google.cloud.monitoring_v3.services.metric_service.transports import (
            MetricServiceGrpcTransport,
        )

        return loopback_client(
            monitoring_v3.MetricServiceClient, MetricServiceGrpcTransport, endpoint
        )
    if os.environ.get("PUBSUB_EMULATOR_HOST"):
        return None
    from google.cloud import monitoring_v3

    return monitoring_v3.MetricServiceClient()


def alert_policy_client() -> tuple[Any | None, str | None]:
    """(Cloud Monitoring AlertPolicyService client, None), or (None, why not): there is none on
    the emulator, and without credentials the alert policies are left unchecked, not failed
    (`dlq doctor` checks Pub/Sub with the same credentials and says so there)."""
    from events_infra.dlq.doctor import MONITORING_UNREAD

    endpoint = loopback_endpoint(MONITORING_ENDPOINT_ENV, DlqError)
    if not endpoint and os.environ.get("PUBSUB_EMULATOR_HOST"):
        return None, MONITORING_UNREAD
    from google.cloud import monitoring_v3

    if endpoint:
        from google.cloud.monitoring_v3.services.alert_policy_service.transports import (
            AlertPolicyServiceGrpcTransport,
        )

        client = loopback_client(
            monitoring_v3.AlertPolicyServiceClient, AlertPolicyServiceGrpcTransport, endpoint
        )
        return client, None
    from google.auth.exceptions import DefaultCredentialsError

    try:
        return monitoring_v3.AlertPolicyServiceClient(), None
    except DefaultCredentialsError as err:
        return None, f"not checked: no Google credentials for Cloud Monitoring ({err})"


def preflight(subscriber: Any, target: DlqTarget) -> Any:
    """Fetch the dead-letter subscription once, fast: proves Pub/Sub is reachable, the
    subscription exists and we may read it, before anything is pulled or changed."""
    with pubsub_errors(target):
        return subscriber.get_subscription(
            subscription=target.subscription_path, timeout=PREFLIGHT_TIMEOUT_S, retry=None
        )


DLQ_OPERATOR_HINT = "ask for the DLQ operator grants (access.dlq_operators in the stack config)"


def pubsub_errors(
    target: DlqTarget, what: str | None = None, permission_hint: str = DLQ_OPERATOR_HINT
) -> Any:
    """Google API failures -> DlqError naming the resource and the fix."""
    return google_errors(
        DlqError,
        what or f"subscription {target.dead_letter_subscription!r}",
        target.project,
        target.emulator,
        "check --stack and --project, or deploy the stack (pulumi up / eventsctl local up)",
        permission_hint,
    )


def sql_admin_clients(topology: Any) -> tuple[tuple[Any, Any] | None, str | None]:
    """((instances, databases) Cloud SQL Admin clients, None), or (None, why not): none for a
    stack without an outbox, none on the emulator, none without credentials."""
    from google.auth.exceptions import DefaultCredentialsError

    from events_infra.db import sql_admin
    from events_infra.dlq.doctor_sql import SQL_UNREAD
    from events_infra.stack_config.live_sql import has_outbox_databases

    if not has_outbox_databases(topology):
        return None, None
    try:
        clients = sql_admin.sql_admin_clients(DlqError)
    except DefaultCredentialsError as err:
        return None, f"not checked: no Google credentials for Cloud SQL ({err})"
    return clients, None if clients is not None else SQL_UNREAD
