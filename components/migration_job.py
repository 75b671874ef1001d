"""Applying the outbox schema from inside the VPC: a Cloud Run job, run by `pulumi up`.

A private-IP instance (prod) has no route from the machine running `pulumi up` (a GitHub-hosted
runner). So the stack declares a Cloud Run job — the relay's image, `eventsctl outbox migrate`
through the Cloud SQL connector with IAM login as the migration principal, on the VPC — and
`OutboxSchema` with `JobMigrationProvider` runs it when the migration set changes and waits for
the result: `pulumi up` fails with the job's error if a migration fails.

The job runner is the one part swapped in tests (`JobRunner`): there it runs the same command
against real PostgreSQL instead of asking Cloud Run to.
"""

from __future__ import annotations

from typing import Any, Protocol

from events_infra.components.schema_step import SchemaStep
from events_infra.errors import EventsInfraError
from events_infra.outbox.schema import load_migrations

JOB_TIMEOUT_S = 900.0


class MigrationJobFailed(EventsInfraError, RuntimeError):
    """The job's execution failed; the message says how and where its logs are."""


class JobRunner(Protocol):
    def run(self, job: str) -> str:
        """Run `job` (projects/P/locations/R/jobs/J) to completion; return the execution name,
        or raise MigrationJobFailed."""
        ...


class CloudRunJobRunner:
    """Runs the job with the Cloud Run Admin API and waits (bounded) for its execution."""

    def run(self, job: str) -> str:
        from google.api_core import exceptions as gexc
        from google.cloud import run_v2

        client = run_v2.JobsClient()
        try:
            operation = client.run_job(name=job, timeout=60)
            execution = operation.result(timeout=JOB_TIMEOUT_S)
        except gexc.GoogleAPICallError as err:
            raise MigrationJobFailed(f"running {job} failed: {err.message}") from None
        except TimeoutError:
            raise MigrationJobFailed(
                f"{job} did not finish within {JOB_TIMEOUT_S:.0f} s; see its executions"
            ) from None
        if execution.failed_count or not execution.succeeded_count:
            reasons = "; ".join(c.message for c in execution.conditions if c.message)
            raise MigrationJobFailed(
                f"migration job {execution.name} failed: {reasons or 'no reason given'} "
                f"(logs: {execution.log_uri})"
            )
        return str(execution.name)


class JobMigrationProvider(SchemaStep):
    """Run the migration job and wait; re-run when the migration set (or the job) changes."""

    rerun_on = ("migrations_digest", "job")

    def __init__(self, runner: JobRunner | None = None) -> None:
        self.runner = runner or CloudRunJobRunner()

    def _id(self, props: dict[str, Any]) -> str:
        return str(props["job"])

    def _run(self, props: dict[str, Any]) -> dict[str, Any]:
        execution = self.runner.run(props["job"])
        shipped = load_migrations()
        return {
            **props,
            "execution": execution,
            "schema_version": shipped[-1].version if shipped else 0,
            "applied": None,  # the job's log lists them; the runner only knows it succeeded
        }
