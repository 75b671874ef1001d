"""Clients of the Cloud SQL Admin API (read-only use: `roles/cloudsql.viewer`), shared by
`eventsctl adopt plan` (before the first `up`) and `eventsctl dlq doctor` (drift after it)."""

from __future__ import annotations

import os
from typing import Any

from events_infra.pubsub.api_calls import loopback_client, loopback_endpoint

SQLADMIN_ENDPOINT_ENV = "EVENTSCTL_SQLADMIN_ENDPOINT"
"""host:port of a Cloud SQL Admin API to use instead of Google's (plaintext, loopback only)."""


def sql_admin_clients(error: type[Exception]) -> tuple[Any, Any] | None:
    """(instances, databases) clients, or None in local mode (the emulator has no Cloud SQL:
    PUBSUB_EMULATOR_HOST set and no SQLADMIN endpoint given). A bad endpoint is `error`."""
    from google.cloud import sqladmin_v1

    endpoint = loopback_endpoint(SQLADMIN_ENDPOINT_ENV, error)
    if endpoint:
        from google.cloud.sqladmin_v1.services.sql_databases_service.transports import (
            SqlDatabasesServiceGrpcTransport,
        )
        from google.cloud.sqladmin_v1.services.sql_instances_service.transports import (
            SqlInstancesServiceGrpcTransport,
        )

        return (
            loopback_client(
                sqladmin_v1.SqlInstancesServiceClient, SqlInstancesServiceGrpcTransport, endpoint
            ),
            loopback_client(
                sqladmin_v1.SqlDatabasesServiceClient, SqlDatabasesServiceGrpcTransport, endpoint
            ),
        )
    if os.environ.get("PUBSUB_EMULATOR_HOST"):
        return None
    return sqladmin_v1.SqlInstancesServiceClient(), sqladmin_v1.SqlDatabasesServiceClient()
