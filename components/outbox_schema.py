"""`OutboxSchema`: a Pulumi dynamic resource that applies the outbox migrations during `pulumi up`.

It runs the same runner as `eventsctl outbox migrate` (events_infra.outbox.schema), connecting
through the Cloud SQL Python Connector with IAM database authentication, so no password and no
public authorised network is involved. It re-runs whenever the set of migration files changes (their
digest is an input) and never drops anything on delete: outbox rows outlive any stack refactor.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import ResourceProvider

from events_infra.components.schema_step import PROVIDER_KEY, SchemaStep, provider_class
from events_infra.outbox.schema import MigrationReport, migrate, migrations_digest


class MigrationProvider(SchemaStep):
    """Bring the schema up to date from here, through the Cloud SQL connector."""

    rerun_on = ("migrations_digest", "instance_connection_name", "database", "user")

    def _id(self, props: dict[str, Any]) -> str:
        return f"{props['instance_connection_name']}/{props['database']}"

    def _run(self, props: dict[str, Any]) -> dict[str, Any]:
        return self._outs(props, self._apply(props))

    def _apply(self, props: dict[str, Any]) -> MigrationReport:
        conn = self._connect(props)
        try:
            return migrate(conn)
        finally:
            conn.close()

    def _connect(self, props: dict[str, Any]) -> Any:
        """A pg8000 connection through the Cloud SQL connector, as the IAM principal."""
        from events_infra.db.cloud_sql import connect_iam

        return connect_iam(
            props["instance_connection_name"],
            props["user"],
            props["database"],
            bool(props.get("private_ip")),
        )

    @staticmethod
    def _outs(props: dict[str, Any], report: MigrationReport) -> dict[str, Any]:
        return {**props, "schema_version": report.schema_version, "applied": report.applied}


class OutboxSchema(pulumi.dynamic.Resource):
    """The outbox tables in `database` on the Cloud SQL instance, at the shipped schema version."""

    schema_version: pulumi.Output[int]
    applied: pulumi.Output[list[str]]

    def __init__(
        self,
        name: str,
        *,
        instance_connection_name: pulumi.Input[str],
        database: pulumi.Input[str],
        user: pulumi.Input[str],
        private_ip: bool,
        provider: ResourceProvider,
        job: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`provider` applies the schema: `MigrationProvider()` from the machine running
        `pulumi up`, or with `job` (a Cloud Run job's full name) `JobMigrationProvider()`
        (components/migration_job.py), which runs that job inside the VPC. The caller chooses,
        so this module and the job's do not import each other."""
        props: dict[str, Any] = {
            "instance_connection_name": instance_connection_name,
            "database": database,
            "user": user,
            "private_ip": private_ip,
            "migrations_digest": migrations_digest(),
            PROVIDER_KEY: provider_class(provider),
            "schema_version": None,
            "applied": None,
        }
        if job is not None:
            props.update(job=job, execution=None)
        super().__init__(provider, name, props, opts)
