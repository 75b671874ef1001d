"""Migrations inside the VPC: prod's schema is applied by a Cloud Run job that `pulumi up` runs
and waits for. Declared resources under Pulumi's mocks; the dynamic resource's create / update /
delete on real PostgreSQL with only the job runner swapped (it runs the job's command here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from events_infra.cli.app import app
from events_infra.components.migration_job import JobMigrationProvider, MigrationJobFailed
from events_infra.components.offline import IMAGE_DIGEST, run_program
from events_infra.outbox.schema import load_migrations, migrations_digest

ROOT = Path(__file__).resolve().parent.parent
JOB = "projects/cotton-erp/locations/asia-south1/jobs/outbox-migrate"


def test_prod_applies_its_schema_with_a_job_inside_the_vpc(prod: Any) -> None:
    job = prod.named("outbox-migrate-job")
    task = job.inputs["template"]["template"]
    [container] = task["containers"]
    assert container["image"] == (
        f"asia-south1-docker.pkg.dev/cotton-erp/events/events-infra@{IMAGE_DIGEST}"
    )
    assert container["args"] == [
        "outbox", "migrate", "--cloud-sql-instance", "cotton-erp:asia-south1:events-outbox",
        "--iam-user", "outbox-migrate@cotton-erp.iam", "--database", "events", "--private-ip",
    ]  # fmt: skip
    principal = "outbox-migrate@cotton-erp.iam.gserviceaccount.com"
    assert task["serviceAccount"] == principal  # its own account, not the deployer
    assert task["maxRetries"] == 0  # a failed migration is rolled back; up reports it
    assert task["vpcAccess"]["networkInterfaces"] == [
        {
            "network": "projects/cotton-erp/global/networks/cotton-erp-vpc",
            "subnetwork": "projects/cotton-erp/regions/asia-south1/subnetworks/cotton-erp-vpc",
        }
    ]
    [schema] = [r for r in prod.resources if r.name == "outbox-schema"]
    assert schema.inputs["job"] == JOB
    assert schema.inputs["migrations_digest"] == migrations_digest()
    assert job.urn in schema.dependencies
    for role in ("client", "instanceuser"):
        grant = prod.named(f"outbox-migration-{role}")
        assert grant.inputs["member"] == f"serviceAccount:{principal}"
        assert "events-outbox" in grant.inputs["condition"]["expression"]
        # the job's first run connects with these: the schema step waits for them
        assert grant.urn in schema.dependencies


def test_the_deployer_may_only_act_as_the_migration_account(prod: Any) -> None:
    """Least privilege: the job's account holds only the two Cloud SQL grants conditioned on the
    instance; the deployer gets actAs on that one account (to start the job as it), and no grant
    or database login of its own from the migrations."""
    deployer = "serviceAccount:pulumi-deployer@cotton-erp.iam.gserviceaccount.com"
    account = prod.named("outbox-migration-account")
    assert account.inputs["accountId"] == "outbox-migrate"
    act_as = prod.named("outbox-migration-act-as")
    assert (act_as.inputs["role"], act_as.inputs["member"]) == (
        "roles/iam.serviceAccountUser",
        deployer,
    )
    migrator = "serviceAccount:outbox-migrate@cotton-erp.iam.gserviceaccount.com"
    project_grants = [
        g
        for g in prod.of_type("gcp:projects/iAMMember:IAMMember")
        if g.inputs["member"] == migrator
    ]
    assert sorted(g.inputs["role"] for g in project_grants) == [
        "roles/cloudsql.client",
        "roles/cloudsql.instanceUser",
    ]
    assert all("events-outbox" in g.inputs["condition"]["expression"] for g in project_grants)
    assert not [
        g
        for g in prod.of_type("gcp:projects/iAMMember:IAMMember")
        if g.inputs["member"] == deployer
    ]
    [schema] = [r for r in prod.resources if r.name == "outbox-schema"]
    assert act_as.urn in schema.dependencies  # the job cannot be started before actAs holds


def test_dev_with_a_public_ip_migrates_directly(dev: Any) -> None:
    assert dev.of_type("gcp:cloudrunv2/job:Job") == []
    [schema] = [r for r in dev.resources if r.name == "outbox-schema"]
    assert "job" not in schema.inputs


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"events-infra:relay": None},
         "events-infra:database.private_network: the schema of a private-IP instance is applied"),
        ({"events-infra:database": {"migration_principal": "alice@cotton-erp.com"}},
         "events-infra:database.migration_principal: 'alice@cotton-erp.com' must be a service"),
    ],
)  # fmt: skip
def test_a_private_ip_stack_needs_the_image_and_a_service_account(
    prod_config: dict[str, Any], change: dict[str, Any], message: str
) -> None:
    import pulumi

    for key, value in change.items():
        if value is None:
            del prod_config[key]
        else:
            prod_config[key] = {**prod_config[key], **value}
    config = {k: v if isinstance(v, str) else json.dumps(v) for k, v in prod_config.items()}
    with pytest.raises(pulumi.RunError, match=message.replace("(", r"\(")):
        run_program(config)


class RunsTheJobCommandHere:
    """The swapped part: instead of asking Cloud Run, run the job's command (`eventsctl outbox
    migrate`) against the test database, and answer as CloudRunJobRunner does."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.runs = 0

    def run(self, job: str) -> str:
        self.runs += 1
        result = subprocess.run(
            [sys.executable, "-m", "events_infra.cli.app", "outbox", "migrate", "--database-url",
             self.database_url],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if result.returncode != 0:
            raise MigrationJobFailed(f"migration job {job}/executions/{self.runs} failed: "
                                     f"{result.stderr.strip()}")  # fmt: skip
        return f"{job}/executions/{self.runs}"


def props() -> dict[str, Any]:
    return {"job": JOB, "migrations_digest": migrations_digest(), "database": "events"}


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT tablename FROM pg_tables")}


def test_create_runs_the_job_update_reruns_on_new_migrations_delete_keeps_data(
    database_url: str,
) -> None:
    runner = RunsTheJobCommandHere(database_url)
    provider = JobMigrationProvider(runner)
    created = provider.create(props())
    assert created.id == JOB and runner.runs == 1
    assert {"event_outbox", "event_outbox_failed", "outbox_schema_migrations"} <= tables(
        database_url
    )
    assert created.outs["schema_version"] == load_migrations()[-1].version
    assert created.outs["execution"] == f"{JOB}/executions/1"

    same = provider.diff(JOB, created.outs, props())
    assert same.changes is False  # nothing new to apply: up does not run the job
    newer = {**props(), "migrations_digest": "a-new-migration-set"}
    assert provider.diff(JOB, created.outs, newer).changes is True
    provider.update(JOB, created.outs, newer)
    assert runner.runs == 2

    provider.delete(JOB, created.outs)
    assert "event_outbox" in tables(database_url)  # never dropped


def test_a_failing_job_fails_up_with_the_jobs_error(database_url: str) -> None:
    runner = RunsTheJobCommandHere(database_url)
    JobMigrationProvider(runner).create(props())
    with psycopg.connect(database_url) as conn:  # someone edited an applied migration
        conn.execute("UPDATE outbox_schema_migrations SET checksum = 'edited' WHERE version = 1")
    with pytest.raises(MigrationJobFailed) as info:
        JobMigrationProvider(runner).update(JOB, {}, {**props(), "migrations_digest": "x"})
    assert "failed: error: migration 0001_event_outbox.sql was edited after it was applied" in (
        str(info.value)
    )


def test_migrate_through_the_connector_checks_its_flags_in_one_line() -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["outbox", "migrate", "--cloud-sql-instance", "events-outbox"])
    assert bad.exit_code == 2
    assert "use PROJECT:REGION:INSTANCE" in bad.output and len(bad.output.strip().splitlines()) == 1
    missing = runner.invoke(
        app, ["outbox", "migrate", "--cloud-sql-instance", "cotton-erp:asia-south1:events-outbox"]
    )
    assert missing.exit_code == 2 and "needs --iam-user" in missing.output


def test_schema_providers_recorded_in_deployed_state_still_load() -> None:
    """Pulumi stores a dynamic resource's provider pickled by reference to its class and
    unpickles the recorded one to refresh or delete it. Stacks deployed before the
    events_infra namespace recorded `components.outbox_schema.MigrationProvider` and
    `components.migration_job.JobMigrationProvider`; the dynamic provider host runs in the
    project directory (on sys.path), so those files keep their names and classes."""
    code = (
        "import pickle\n"
        "for module, name in (('components.outbox_schema', 'MigrationProvider'),\n"
        "                     ('components.migration_job', 'JobMigrationProvider')):\n"
        "    cls = pickle.loads(f'c{module}\\n{name}\\n.'.encode())  # GLOBAL: a class reference\n"
        "    print(cls.__module__, cls.__name__, cls().delete('id', {}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "components.outbox_schema MigrationProvider None",
        "components.migration_job JobMigrationProvider None",
    ]


def test_the_first_up_after_the_move_rerecords_the_provider_once() -> None:
    """State written before the move has no provider_class input: the first diff says change
    (one idempotent re-run, recording the events_infra.* reference); the next says none."""
    from events_infra.components.schema_step import PROVIDER_KEY, provider_class

    provider = JobMigrationProvider(RunsTheJobCommandHere("postgresql://unused"))
    news = {**props(), PROVIDER_KEY: provider_class(provider)}
    assert news[PROVIDER_KEY] == "events_infra.components.migration_job.JobMigrationProvider"
    assert provider.diff(JOB, props(), news).changes is True
    assert provider.diff(JOB, news, news).changes is False


# --- the Cloud Run runner: IAM refusals retried for a bounded time ----------------------------


class Jobs:
    """Cloud Run's Jobs API as the runner calls it (run_job -> operation.result), answering
    from a script: an exception to raise, or an execution (failed or not). Cloud Run has no
    emulator; only the answers the runner reads are modelled."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.runs = 0

    def run_job(self, name: str, timeout: float) -> Any:
        self.runs += 1
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return SimpleNamespace(result=lambda timeout: answer)


def execution(n: int, ok: bool, exit_code: int = 0) -> Any:
    return SimpleNamespace(
        name=f"{JOB}/executions/e{n}", succeeded_count=int(ok), failed_count=int(not ok),
        conditions=[SimpleNamespace(message="Task failed: the container exited with an error")],
        log_uri="https://console.cloud.google.com/logs", exit_code=exit_code,
    )  # fmt: skip


class Tasks:
    def __init__(self, jobs: Jobs, executions: list[Any]) -> None:
        self.by_name = {e.name: e for e in executions}

    def list_tasks(self, parent: str, timeout: float) -> list[Any]:
        code = self.by_name[parent].exit_code
        return [SimpleNamespace(last_attempt_result=SimpleNamespace(exit_code=code))]


def runner_for(*answers: Any, wait_s: float = 600.0) -> tuple[Any, Jobs, list[float]]:
    from events_infra.components.migration_job import CloudRunJobRunner

    jobs = Jobs(*answers)
    sleeps: list[float] = []
    clock = SimpleNamespace(now=0.0)

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.now += seconds

    executions = [a for a in answers if not isinstance(a, BaseException)]
    runner = CloudRunJobRunner(
        jobs, Tasks(jobs, executions), wait_s=wait_s, sleep=sleep, clock=lambda: clock.now
    )
    return runner, jobs, sleeps


def test_iam_refusals_are_run_again_until_the_grants_take_effect() -> None:
    from google.api_core.exceptions import PermissionDenied

    from events_infra.components.migration_job import NOT_YET_PERMITTED

    runner, jobs, sleeps = runner_for(
        PermissionDenied("actAs on the migration principal not yet effective"),
        execution(1, ok=False, exit_code=NOT_YET_PERMITTED),  # the connector got a 403
        execution(2, ok=True),
    )
    assert runner.run(JOB) == f"{JOB}/executions/e2"
    assert jobs.runs == 3 and sleeps == [5.0, 10.0]  # backing off between runs


def test_a_migration_that_fails_otherwise_fails_up_at_once() -> None:
    runner, jobs, sleeps = runner_for(execution(1, ok=False, exit_code=2))
    with pytest.raises(MigrationJobFailed, match="e1 failed: Task failed.*logs: https://"):
        runner.run(JOB)
    assert jobs.runs == 1 and sleeps == []


def test_a_refusal_that_outlasts_the_wait_fails_naming_the_grants() -> None:
    from events_infra.components.migration_job import NOT_YET_PERMITTED

    refusals = [execution(n, ok=False, exit_code=NOT_YET_PERMITTED) for n in range(20)]
    runner, jobs, sleeps = runner_for(*refusals, wait_s=120.0)
    with pytest.raises(MigrationJobFailed, match="IAM still refuses after 120 s.*Cloud SQL grants"):
        runner.run(JOB)
    assert sum(sleeps) <= 120.0 and jobs.runs == len(sleeps) + 1


@pytest.mark.parametrize(
    ("error", "refused"),
    [
        ("permission-denied", True),
        ("http-403", True),
        ("iam-login-refused", True),
        ("no-such-database", False),
        ("timeout", False),
    ],
)
def test_only_iam_refusals_count_as_not_yet_permitted(error: str, refused: bool) -> None:
    import pg8000.exceptions
    from google.api_core.exceptions import PermissionDenied

    from events_infra.db.cloud_sql import is_permission_refusal

    errors = {
        "permission-denied": PermissionDenied("cloudsql.instances.connect"),
        "http-403": type("ClientResponseError", (Exception,), {"status": 403})("Forbidden"),
        "iam-login-refused": pg8000.exceptions.DatabaseError(
            {"S": "FATAL", "C": "28P01", "M": "Cloud SQL IAM service account authentication failed"}
        ),
        "no-such-database": pg8000.exceptions.DatabaseError(
            {"S": "FATAL", "C": "3D000", "M": 'database "events" does not exist'}
        ),
        "timeout": TimeoutError("connect timed out"),
    }
    assert is_permission_refusal(errors[error]) is refused


def test_the_job_command_exits_not_yet_permitted_on_an_iam_refusal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the runner reads from the task: exit 3 for IAM's no, 2 for anything else."""
    from google.api_core.exceptions import PermissionDenied
    from typer.testing import CliRunner

    from events_infra.cli.app import app
    from events_infra.components.migration_job import NOT_YET_PERMITTED
    from events_infra.db import cloud_sql

    args = ["outbox", "migrate", "--cloud-sql-instance", "cotton-erp:asia-south1:events-outbox",
            "--iam-user", "pulumi-deployer@cotton-erp.iam", "--private-ip"]  # fmt: skip
    for error, code in ((PermissionDenied("cloudsql.instances.connect"), NOT_YET_PERMITTED),
                        (TimeoutError("connect timed out"), 2)):  # fmt: skip

        def refuse(*_: Any, error: BaseException = error) -> Any:
            raise error

        monkeypatch.setattr(cloud_sql, "connect_iam", refuse)
        result = CliRunner().invoke(app, args)
        assert result.exit_code == code
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("error: cannot connect to cotton-erp:asia-south1:events-outbox")
