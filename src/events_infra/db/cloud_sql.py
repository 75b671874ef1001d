"""A DB-API connection to Cloud SQL through the Cloud SQL Python Connector, as an IAM principal.

No password and no authorised network: the connector fetches an ephemeral certificate and
logs in with the caller's IAM identity (automatic IAM database authentication). Used by the
schema step of `pulumi up` and by `eventsctl outbox migrate --cloud-sql-instance` (the migration
job inside the VPC). pg8000 speaks the DB-API the migration runner needs.
"""

from __future__ import annotations

from typing import Any


def connect_iam(instance: str, user: str, database: str, private_ip: bool) -> Any:
    """A pg8000 connection to `instance` (PROJECT:REGION:INSTANCE) as IAM user `user`; closing
    it also closes the connector."""
    from google.cloud.sql.connector import Connector, IPTypes

    connector = Connector(refresh_strategy="lazy")
    try:
        conn = connector.connect(
            instance,
            "pg8000",
            user=user,
            db=database,
            enable_iam_auth=True,
            ip_type=IPTypes.PRIVATE if private_ip else IPTypes.PUBLIC,
        )
    except Exception:
        connector.close()
        raise
    original_close = conn.close

    def close() -> None:
        original_close()
        connector.close()

    conn.close = close
    return conn


NOT_YET_PERMITTED_EXIT = 3
"""`eventsctl outbox migrate` exits with this when IAM refused it: the migration job's runner
(components.migration_job) runs the job again for a bounded time instead of failing `up`."""
AUTH_REFUSED_SQLSTATES = ("28000", "28P01")
"""invalid_authorization_specification / invalid_password: what PostgreSQL answers an IAM
login whose Cloud SQL instanceUser role or IAM database user has not taken effect yet."""


def is_permission_refusal(err: BaseException) -> bool:
    """Whether `err` is IAM saying no (yet): a 403 from the Cloud SQL Admin API while the
    connector fetches its certificate (`cloudsql.client` missing), or a refused IAM login.
    IAM changes take minutes to propagate, so a fresh deployment meets these for a while and
    its migration job is worth running again; anything else is not."""
    from google.api_core import exceptions as gexc

    if isinstance(err, gexc.PermissionDenied | gexc.Forbidden):
        return True
    if getattr(err, "status", None) == 403:  # aiohttp.ClientResponseError from the connector
        return True
    for arg in getattr(err, "args", ()):
        if isinstance(arg, dict) and arg.get("C") in AUTH_REFUSED_SQLSTATES:  # pg8000
            return True
    return False
