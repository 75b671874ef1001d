"""`eventsctl adopt plan` on the outbox's Cloud SQL side and the stack's service accounts: the
real `google-cloud-sql` and `google-cloud-iam` clients against a loopback Cloud SQL Admin API
and IAM API (tests/support/sqladmin_server.py, iam_server.py), Pub/Sub on the emulator behind
the strict proxy, the program under Pulumi's mocks.

Rules written down here, from the API reference and the provider's docs: Cloud SQL cannot move
an instance to another region or downgrade its major version (a new instance); tier, edition
and availability changes apply in place with a restart; IAM database users need the instance
flag `cloudsql.iam_authentication=on`; an instance is imported as
`projects/{project}/instances/{name}` and a database as `.../instances/{i}/databases/{name}`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.cloud import pubsub_v1
from typer.testing import CliRunner

from events_infra.adopt.cloud_sql import SQLADMIN_ENDPOINT_ENV, sql_admin_clients
from events_infra.adopt.model import DISRUPTIVE, IN_PLACE, MIGRATION, PREREQUISITE
from events_infra.adopt.plan import AdoptPlan, adopt_plan, import_file
from events_infra.adopt.service_accounts import IAM_ENDPOINT_ENV, iam_client
from events_infra.cli.app import app
from events_infra.components.offline import run_program
from events_infra.stack_config import pulumi_names as names
from events_infra.stack_config.live_diff import RESTARTS
from events_infra.stack_config.stack_files import topology_from_config
from tests.support.iam_server import IamServer
from tests.support.sqladmin_server import NETWORK, SqlAdminServer, live_instance
from tests.support.stack_files import write_stack

runner = CliRunner()
EXISTING = {
    "existing": True,
    "region": "asia-south1",
    "instance": "erp-main",
    "database": "trading",
    "private_network": NETWORK,
    "subnetwork": "projects/cotton-erp/regions/asia-south1/subnetworks/cotton-erp-vpc",
    "migration_principal": "pulumi-deployer@cotton-erp.iam.gserviceaccount.com",
}


@pytest.fixture
def iam(monkeypatch: pytest.MonkeyPatch) -> Iterator[IamServer]:
    server = IamServer().start()
    monkeypatch.setenv(IAM_ENDPOINT_ENV, server.address)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def project(pubsub: str) -> str:
    """A project of its own on the emulator, with the ERP's hand-made topic and subscription."""
    name = f"erp-{uuid.uuid4().hex[:8]}"
    topic = f"projects/{name}/topics/events"
    pubsub_v1.PublisherClient().create_topic(name=topic)
    pubsub_v1.SubscriberClient().create_subscription(
        name=f"projects/{name}/subscriptions/events-sub", topic=topic
    )
    return name


def config_for(prod_config: dict[str, Any], project: str, database: dict[str, Any] | None = None):
    prod_config["gcp:project"] = project
    prod_config["events-infra:subscriptions"] = [{"name": "events-sub", "replay_filter": False}]
    if database is not None:
        prod_config["events-infra:database"] = database
    return prod_config


def plan_for(config: dict[str, Any]) -> AdoptPlan:
    clients = sql_admin_clients()
    assert clients is not None
    topology = topology_from_config(config, set())
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    return adopt_plan(topology, "prod", publisher, subscriber, "emulator", clients)


def sql_resources(plan: AdoptPlan) -> dict[str, Any]:
    return {r.type: r for r in plan.resources if r.type.startswith("gcp:sql/")}


def test_a_stack_instance_that_exists_is_imported_under_the_programs_urns(
    prod_config: dict[str, Any], project: str, sqladmin: SqlAdminServer
) -> None:
    """A greenfield stack whose instance name is taken: `up` would fail with 409, so the plan
    lists it as existing, classes each difference, and the import file's URNs are the ones the
    program registers under its OutboxDatabase component."""
    config = config_for(prod_config, project)
    live_instance(
        sqladmin, project, "events-outbox",
        tier="db-custom-1-3840", version="POSTGRES_15", availability="ZONAL",
    )  # fmt: skip
    sqladmin.add_database(project, "events-outbox", "events")
    plan = plan_for(config)
    resources = sql_resources(plan)
    instance = resources[names.SQL_INSTANCE_TYPE]
    assert instance.exists and instance.managed and resources[names.SQL_DATABASE_TYPE].exists
    changes = {d.field: (d.live, d.declared, d.change) for d in instance.differences}
    assert changes == {
        "tier": ("db-custom-1-3840", "db-custom-2-7680", RESTARTS),
        "availability_type": ("ZONAL", "REGIONAL", RESTARTS),
        "database_version": ("POSTGRES_15", "POSTGRES_16", RESTARTS),  # an upgrade
    }
    assert all("restart" in d.how or "downtime" in d.how for d in instance.differences)
    assert not plan.blocked

    document = import_file(plan)
    components = {r["name"]: r["type"] for r in document["resources"] if r.get("component")}
    assert components == {names.BUS: names.EVENT_BUS_TYPE, "outbox": names.OUTBOX_DATABASE_TYPE}
    imported = {
        names.child_urn("prod", r["type"], r["name"], components[r["parent"]]): r["id"]
        for r in document["resources"]
        if not r.get("component")
    }
    engine_config = {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    declared = {r.urn: r for r in run_program(engine_config, stack="prod").resources}
    assert set(imported) <= set(declared)
    sql_ids = {v for v in imported.values() if "/instances/" in v}
    assert sql_ids == {
        f"projects/{project}/instances/events-outbox",
        f"projects/{project}/instances/events-outbox/databases/events",
    }
    outbox = next(r for r in declared.values() if r.type == names.OUTBOX_DATABASE_TYPE)
    for urn, id_ in imported.items():
        if "/instances/" in id_:
            assert declared[urn].parent == outbox.urn


@pytest.mark.parametrize(
    ("live", "field"),
    [({"region": "europe-west1"}, "region"), ({"version": "POSTGRES_17"}, "database_version")],
)
def test_moving_or_downgrading_a_stack_instance_is_a_migration(
    prod_config: dict[str, Any], project: str, sqladmin: SqlAdminServer, live: dict, field: str
) -> None:
    live_instance(sqladmin, project, "events-outbox", **live)
    plan = plan_for(config_for(prod_config, project))
    [difference] = sql_resources(plan)[names.SQL_INSTANCE_TYPE].differences
    assert (difference.field, difference.change) == (field, MIGRATION)
    assert "another database.instance" in difference.how and plan.blocked


def test_every_instance_field_the_program_sets_is_compared_and_classed(
    prod_config: dict[str, Any], project: str, sqladmin: SqlAdminServer
) -> None:
    """Putting back more backups than declared deletes the extra ones (loses data); PITR,
    backups and deletion protection switched off, or a flag added, are restored in place."""
    live_instance(
        sqladmin, project, "events-outbox", retained=30, pitr=False, backups=False,
        deletion_protection=False,
        flags={"cloudsql.iam_authentication": "on", "cloudsql.logical_decoding": "on"},
    )  # fmt: skip
    plan = plan_for(config_for(prod_config, project))
    changes = {
        d.field: (d.live, d.declared, d.change)
        for d in sql_resources(plan)[names.SQL_INSTANCE_TYPE].differences
    }
    assert changes == {
        "retained_backups": ("30", "14", DISRUPTIVE),
        "point_in_time_recovery": ("False", "True", IN_PLACE),
        "backups": ("False", "True", IN_PLACE),
        "deletion_protection": ("False", "True", IN_PLACE),
        "flags": (
            "cloudsql.iam_authentication=on, cloudsql.logical_decoding=on",
            "cloudsql.iam_authentication=on",
            RESTARTS,
        ),
    }
    assert plan.blocked  # fewer backups would be lost


def test_an_existing_database_is_checked_for_what_the_stack_relies_on(
    prod_config: dict[str, Any], project: str, sqladmin: SqlAdminServer
) -> None:
    """The service's own instance: never imported, but every prerequisite of the outbox, the
    relay and the IAM logins is checked before `up` would fail half-way."""
    config = config_for(prod_config, project, EXISTING)
    absent = plan_for(config)
    [missing] = sql_resources(absent)[names.SQL_INSTANCE_TYPE].differences
    assert (missing.field, missing.change) == ("instance", PREREQUISITE) and absent.blocked

    other = "projects/cotton-erp/global/networks/default"
    live_instance(sqladmin, project, "erp-main", flags={"max_connections": "200"}, network=other)
    wrong = plan_for(config)
    resources = sql_resources(wrong)
    found = {d.field: d for d in resources[names.SQL_INSTANCE_TYPE].differences}
    assert set(found) == {"flag cloudsql.iam_authentication", "private_network"}
    assert found["flag cloudsql.iam_authentication"].live == "(unset)"
    assert "keep the instance's other flags" in found["flag cloudsql.iam_authentication"].how
    [no_db] = resources[names.SQL_DATABASE_TYPE].differences
    assert (no_db.field, no_db.change) == ("database", PREREQUISITE)
    assert wrong.blocked and all(d.change == PREREQUISITE for d in found.values())

    live_instance(sqladmin, project, "erp-main")  # the flag on, the declared network
    sqladmin.add_database(project, "erp-main", "trading")
    ready = plan_for(config)
    resources = sql_resources(ready)
    assert all(r.exists and not r.differences and not r.managed for r in resources.values())
    assert not ready.blocked
    ids = {r.get("id") for r in import_file(ready)["resources"]}
    assert not any("instances/erp-main" in str(i) for i in ids)  # never imported: not the stack's


def test_cli_reads_cloud_sql_says_when_it_cannot_and_fails_in_one_line(
    prod_config: dict[str, Any],
    project: str,
    sqladmin: SqlAdminServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name, stacks = write_stack(tmp_path, config_for(prod_config, project, EXISTING))
    args = ["adopt", "plan", "--stack", name, "--stacks-dir", str(stacks)]
    live_instance(sqladmin, project, "erp-main", flags={})
    sqladmin.add_database(project, "erp-main", "trading")
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "cloudsql.iam_authentication must be fixed first" in result.stderr
    assert sqladmin.calls == ["instances.get erp-main", "databases.get erp-main/trading"]
    rows = json.loads(runner.invoke(app, [*args, "--json"]).stdout)["resources"]
    assert [r["managed"] for r in rows if r["type"].startswith("gcp:sql/")] == [False, False]

    sqladmin.deny = True
    denied = runner.invoke(app, args)
    assert denied.exit_code == 2
    [line] = denied.stderr.strip().splitlines()
    assert "permission denied" in line and "roles/cloudsql.viewer" in line

    monkeypatch.setenv(SQLADMIN_ENDPOINT_ENV, "10.0.0.8:443")
    remote = runner.invoke(app, args)
    assert remote.exit_code == 2 and "only a loopback address" in remote.stderr

    monkeypatch.delenv(SQLADMIN_ENDPOINT_ENV)  # local mode: the emulator has no Cloud SQL
    local = runner.invoke(app, args)
    assert local.exit_code == 0, local.output
    assert "not checked: Cloud SQL" in local.stderr
    as_json = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert as_json["not_read"][0].startswith("Cloud SQL:") and not as_json["needs_migration"]


def test_service_accounts_that_exist_are_imported_under_the_programs_urns(
    prod_config: dict[str, Any], project: str, sqladmin: SqlAdminServer, iam: IamServer
) -> None:
    """An account id the stack creates that someone made already (the old path's consumer, the
    relay made by hand) would fail `up` with 409: listed as existing, imported under the
    Access or OutboxDatabase component as the program declares it; the others are absent."""
    config = config_for(prod_config, project)
    domain = f"{project}.iam.gserviceaccount.com"
    made_by_hand = {f"events-relay@{domain}", f"events-consumer@{domain}",
                    f"outbox-migrate@{domain}"}  # fmt: skip
    iam.accounts |= made_by_hand
    clients = sql_admin_clients()
    assert clients is not None
    topology = topology_from_config(config, set())
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    plan = adopt_plan(topology, "prod", publisher, subscriber, "emulator", clients, iam_client())
    accounts = {r.path.rsplit("/", 1)[-1]: r for r in plan.resources
                if r.type == names.SERVICE_ACCOUNT_TYPE}  # fmt: skip
    assert {email for email, r in accounts.items() if r.exists} == made_by_hand
    assert f"events-replayer@{domain}" in accounts and set(iam.calls) == set(accounts)
    assert not plan.blocked and not any("IAM" in n for n in plan.not_read)

    document = import_file(plan)
    components = {r["name"]: r["type"] for r in document["resources"] if r.get("component")}
    assert components["access"] == names.ACCESS_TYPE
    imported = {
        names.child_urn("prod", r["type"], r["name"], components[r["parent"]]): r["id"]
        for r in document["resources"]
        if not r.get("component") and r["type"] == names.SERVICE_ACCOUNT_TYPE
    }
    assert {i.rsplit("/", 1)[-1] for i in imported.values()} == made_by_hand
    engine_config = {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    declared = {r.urn: r for r in run_program(engine_config, stack="prod").resources}
    assert set(imported) <= set(declared)
    for urn, id_ in imported.items():
        assert declared[urn].inputs["accountId"] == id_.rsplit("/", 1)[-1].split("@")[0]


def test_networks_compare_however_the_api_spells_them() -> None:
    from events_infra.stack_config.live_sql import network_path

    short = "projects/p/global/networks/vpc"
    assert network_path("/" + short) == network_path(short) == short
    assert network_path(f"https://www.googleapis.com/compute/v1/{short}") == short
    assert network_path("") is None and network_path("projects/p/global/networks/other") != short
