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

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from events_infra.components.schema_step import SchemaStep
from events_infra.db.cloud_sql import NOT_YET_PERMITTED_EXIT
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


NOT_YET_PERMITTED = NOT_YET_PERMITTED_EXIT
PERMISSION_WAIT_S = 600.0
"""How long the runner keeps running a job that IAM refuses: a fresh grant (the migration
principal's Cloud SQL client and instance user, the deployer's actAs on it) takes minutes to
take effect; past this the refusal is real and `pulumi up` fails saying so."""


class CloudRunJobRunner:
    """Runs the job with the Cloud Run Admin API and waits (bounded) for its execution. IAM
    refusals (the run refused with 403, or the task exiting NOT_YET_PERMITTED) are retried
    with backoff for PERMISSION_WAIT_S; any other failure fails at once."""

    def __init__(
        self,
        jobs: Any = None,
        tasks: Any = None,
        wait_s: float = PERMISSION_WAIT_S,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._jobs, self._tasks = jobs, tasks
        self.wait_s, self._sleep, self._clock = wait_s, sleep, clock

    def run(self, job: str) -> str:
        deadline = self._clock() + self.wait_s
        pause = 5.0
        while True:
            refusal = self._run_once(job)
            if not isinstance(refusal, _Refused):
                return refusal
            if self._clock() + pause > deadline:
                raise MigrationJobFailed(
                    f"{job}: IAM still refuses after {self.wait_s:.0f} s ({refusal.reason}); check "
                    "the migration principal's Cloud SQL grants and the deployer's actAs on it"
                )
            self._sleep(pause)
            pause = min(pause * 2, 60.0)

    def _run_once(self, job: str) -> Any:
        """The execution's name, or _Refused (worth another run), or MigrationJobFailed."""
        from google.api_core import exceptions as gexc

        jobs = self._jobs or self._client("JobsClient")
        try:
            operation = jobs.run_job(name=job, timeout=60)
            execution = operation.result(timeout=JOB_TIMEOUT_S)
        except gexc.PermissionDenied as err:
            return _Refused(f"running it: {err.message}")
        except gexc.GoogleAPICallError as err:
            raise MigrationJobFailed(f"running {job} failed: {err.message}") from None
        except TimeoutError:
            raise MigrationJobFailed(
                f"{job} did not finish within {JOB_TIMEOUT_S:.0f} s; see its executions"
            ) from None
        if not execution.failed_count and execution.succeeded_count:
            return str(execution.name)
        if self._exit_code(execution) == NOT_YET_PERMITTED:
            return _Refused(f"{execution.name} exited {NOT_YET_PERMITTED}: not yet permitted")
        reasons = "; ".join(c.message for c in execution.conditions if c.message)
        raise MigrationJobFailed(
            f"migration job {execution.name} failed: {reasons or 'no reason given'} "
            f"(logs: {execution.log_uri})"
        )

    def _exit_code(self, execution: Any) -> int | None:
        """The exit code of the execution's (one) task's last attempt, if Cloud Run has it."""
        from google.api_core import exceptions as gexc

        tasks = self._tasks or self._client("TasksClient")
        try:
            for task in tasks.list_tasks(parent=execution.name, timeout=30):
                return int(task.last_attempt_result.exit_code)
        except gexc.GoogleAPICallError:
            return None
        return None

    @staticmethod
    def _client(name: str) -> Any:
        from google.cloud import run_v2

        return getattr(run_v2, name)()


@dataclass(frozen=True)
class _Refused:
    reason: str


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
