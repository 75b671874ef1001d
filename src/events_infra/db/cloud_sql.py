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
