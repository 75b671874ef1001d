"""The outbox in the service's own database (`database.existing: true`): the stack names the
instance and database instead of creating them, and the schema, users, grants and relay go
there, so an event is written in the transaction of the business change it records.

The program side runs under Pulumi's mocks; the schema step's provider and the relay run against
a real PostgreSQL database that existed before (business tables, rows, its own migrations).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest

from events_infra.components.offline import Run, run_program
from events_infra.components.outbox_schema import MigrationProvider
from events_infra.outbox import Event, enqueue
from events_infra.stack_config.stack_files import topology_from_config
from events_infra.stack_config.topology import TopologyError
from tests.support.relay_support import Bus, RelayThread

INSTANCE = "gcp:sql/databaseInstance:DatabaseInstance"
DATABASE = "gcp:sql/database:Database"
USER = "gcp:sql/user:User"
SCHEMA = "pulumi-python:dynamic:Resource"
IAM_MEMBER = "gcp:projects/iAMMember:IAMMember"
EXISTING = {
    "existing": True,
    "region": "asia-south1",
    "instance": "erp-main",
    "database": "trading",
    "private_network": "projects/cotton-erp/global/networks/cotton-erp-vpc",
    "subnetwork": "projects/cotton-erp/regions/asia-south1/subnetworks/cotton-erp-vpc",
    "migration_principal": "pulumi-deployer@cotton-erp.iam.gserviceaccount.com",
}


@pytest.fixture
def existing(prod_config: dict[str, Any]) -> Run:
    prod_config["events-infra:database"] = EXISTING
    config = {k: v if isinstance(v, str) else json.dumps(v) for k, v in prod_config.items()}
    return run_program(config, stack="prod")


def test_the_stack_names_the_services_instance_and_never_declares_it(existing: Run) -> None:
    assert existing.of_type(INSTANCE) == [] and existing.of_type(DATABASE) == []
    [schema] = existing.of_type(SCHEMA)
    assert schema.inputs["instance_connection_name"] == "cotton-erp:asia-south1:erp-main"
    assert schema.inputs["database"] == "trading"
    assert {u.inputs["instance"] for u in existing.of_type(USER)} == {"erp-main"}
    assert existing.exports["outbox_connection_name"] == "cotton-erp:asia-south1:erp-main"
    assert existing.exports["outbox_database"] == "trading"


def test_job_grants_and_relay_follow_the_database_they_serve(existing: Run) -> None:
    [job] = existing.of_type("gcp:cloudrunv2/job:Job")
    args = job.inputs["template"]["template"]["containers"][0]["args"]
    assert args[args.index("--cloud-sql-instance") + 1] == "cotton-erp:asia-south1:erp-main"
    assert args[args.index("--database") + 1] == "trading"
    conditioned = [
        m.inputs["condition"]["expression"]
        for m in existing.of_type(IAM_MEMBER)
        if m.inputs["role"] in ("roles/cloudsql.client", "roles/cloudsql.instanceUser")
    ]
    assert conditioned and set(conditioned) == {
        'resource.name == "projects/cotton-erp/instances/erp-main"'
    }
    [service] = existing.of_type("gcp:cloudrunv2/service:Service")
    text = json.dumps(service.inputs)
    assert "cotton-erp:asia-south1:erp-main" in text and "events-outbox" not in text


@pytest.mark.parametrize("key", ["tier", "retained_backups", "database_version"])
def test_instance_settings_are_refused_for_an_existing_instance(key: str) -> None:
    value = {"tier": "db-custom-2-7680", "retained_backups": 30, "database_version": "POSTGRES_15"}
    config = {
        "gcp:project": "cotton-erp",
        "events-infra:database": {**EXISTING, key: value[key]},
    }
    with pytest.raises(TopologyError) as raised:
        topology_from_config(config, set())
    [line] = str(raised.value).splitlines()
    assert key in line and "existing: true" in line


class LocalMigrationProvider(MigrationProvider):
    """The schema step's real provider; only the Cloud SQL connector is swapped."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _connect(self, props: dict[str, Any]) -> Any:
        return psycopg.connect(self.url)


def test_schema_and_relay_work_in_a_database_the_stack_did_not_create(
    database_url: str, pubsub: str
) -> None:
    with psycopg.connect(database_url) as conn:  # the service's database, as it was
        conn.execute("CREATE TABLE trades (id uuid PRIMARY KEY, quantity integer NOT NULL)")
        conn.execute("CREATE TABLE schema_migrations (version text PRIMARY KEY)")
        conn.execute("INSERT INTO schema_migrations VALUES ('20240101_trades')")
        conn.execute("INSERT INTO trades VALUES (gen_random_uuid(), 5)")
    LocalMigrationProvider(database_url).create(
        {
            "instance_connection_name": "cotton-erp:asia-south1:erp-main",
            "database": "trading",
            "user": "pulumi-deployer@cotton-erp.iam",
            "private_ip": True,
        }
    )
    committed, rolled_back = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT * FROM schema_migrations").fetchall() == [("20240101_trades",)]
        assert conn.execute("SELECT count(*) FROM trades").fetchone() == (1,)
        # the outbox roles get nothing on the service's own tables
        for role in ("events_outbox_writer", "events_outbox_relay"):
            assert conn.execute(
                "SELECT has_table_privilege(%s, 'trades', 'SELECT')", (role,)
            ).fetchone() == (False,)
        for trade, keep in ((committed, True), (rolled_back, False)):
            conn.execute("INSERT INTO trades VALUES (%s, 7)", (trade,))
            enqueue(conn, Event("trade.created", "trade", trade, {"quantity": 7}))
            conn.commit() if keep else conn.rollback()
    bus = Bus.create()
    with RelayThread(database_url, bus.topic):
        received = bus.received(seconds=2.0)
    assert [m.message.attributes["aggregate_id"] for m in received] == [str(committed)]


# --- several outbox databases, a relay each (`outboxes`) ---------------------------------------

BILLING = {
    "name": "billing",
    "database": {**EXISTING, "instance": "billing-db", "database": "billing"},
    "writers": ["billing-writer", "events-writer"],
}


def program(prod_config: dict[str, Any], **changes: Any) -> Run:
    prod_config.update(changes)
    config = {k: v if isinstance(v, str) else json.dumps(v) for k, v in prod_config.items()}
    return run_program(config, stack="prod")


@pytest.fixture
def two_outboxes(prod_config: dict[str, Any]) -> Run:
    return program(prod_config, **{"events-infra:outboxes": [BILLING]})


def by_name(run: Run, type_: str) -> dict[str, Any]:
    return {r.inputs["name"]: r for r in run.of_type(type_)}


def test_each_outbox_database_gets_its_schema_job_and_relay(two_outboxes: Run) -> None:
    schemas = {s.inputs["database"]: s.inputs for s in two_outboxes.of_type(SCHEMA)}
    assert schemas["billing"]["instance_connection_name"] == "cotton-erp:asia-south1:billing-db"
    assert schemas["events"]["instance_connection_name"] == "cotton-erp:asia-south1:events-outbox"
    jobs = by_name(two_outboxes, "gcp:cloudrunv2/job:Job")
    assert set(jobs) == {"outbox-migrate", "outbox-migrate-billing"}
    services = by_name(two_outboxes, "gcp:cloudrunv2/service:Service")
    assert set(services) == {"outbox-relay", "outbox-relay-billing"}
    for service, (instance, database) in {
        "outbox-relay": ("events-outbox", "events"),
        "outbox-relay-billing": ("billing-db", "billing"),
    }.items():
        containers = {c["name"]: c for c in services[service].inputs["template"]["containers"]}
        env = {e["name"]: e["value"] for e in containers["relay"]["envs"]}
        assert env["EVENTSCTL_METRICS_JOB"] == service
        assert f"dbname={database} " in env["DATABASE_URL"]
        assert containers["cloud-sql-proxy"]["args"][-1] == f"cotton-erp:asia-south1:{instance}"
    assert two_outboxes.exports["relay_services"] == {"billing": "outbox-relay-billing"}
    # each relay waits for its own database login and the grants conditioned on its instance
    billing = set(services["outbox-relay-billing"].dependencies)
    for name in ("database-user", "client", "instanceuser"):
        assert two_outboxes.named(f"access-relay-billing-{name}").urn in billing
        assert two_outboxes.named(f"access-relay-{name}").urn not in billing


def test_the_relay_and_writers_log_in_to_each_database_they_serve(two_outboxes: Run) -> None:
    logins = {
        (u.inputs["instance"], u.inputs["name"]): u.inputs["databaseRoles"]
        for u in two_outboxes.of_type(USER)
        if u.inputs["type"] == "CLOUD_IAM_SERVICE_ACCOUNT" and "deployer" not in u.inputs["name"]
    }
    relay, writer = "events-relay@cotton-erp.iam", "events-writer@cotton-erp.iam"
    assert logins == {
        ("events-outbox", relay): ["events_outbox_relay"],
        ("events-outbox", writer): ["events_outbox_writer"],
        ("billing-db", relay): ["events_outbox_relay"],
        ("billing-db", writer): ["events_outbox_writer"],
        ("billing-db", "billing-writer@cotton-erp.iam"): ["events_outbox_writer"],
        # each database's schema is owned by the migration job's own account
        ("events-outbox", "outbox-migrate@cotton-erp.iam"): ["cloudsqlsuperuser"],
        ("billing-db", "migrate-billing@cotton-erp.iam"): ["cloudsqlsuperuser"],
    }
    accounts = [
        a.inputs["accountId"] for a in two_outboxes.of_type("gcp:serviceaccount/account:Account")
    ]
    assert accounts.count("events-writer") == 1  # one identity, a login on each database
    conditions = {
        m.inputs["condition"]["expression"]
        for m in two_outboxes.of_type(IAM_MEMBER)
        if m.inputs["role"] == "roles/cloudsql.instanceUser"
    }
    assert conditions == {
        f'resource.name == "projects/cotton-erp/instances/{i}"'
        for i in ("events-outbox", "billing-db")
    }


def test_each_outbox_database_pages_on_its_own(two_outboxes: Run) -> None:
    for suffix, job in (("", "outbox-relay"), ("-billing", "outbox-relay-billing")):
        stuck = two_outboxes.named(f"alerting-stuck-outbox{suffix}")
        silent = two_outboxes.named(f"alerting-relay-silent{suffix}")
        [threshold] = stuck.inputs["conditions"]
        [absent] = silent.inputs["conditions"]
        for text in (
            threshold["conditionThreshold"]["filter"],
            absent["conditionAbsent"]["filter"],
        ):
            assert f'resource.labels.job = "{job}"' in text
        assert f"gcloud run services describe {job} " in stuck.inputs["documentation"]["content"]
    [dashboard] = two_outboxes.of_type("gcp:monitoring/dashboard:Dashboard")
    titles = [
        t["widget"]["title"]
        for t in json.loads(dashboard.inputs["dashboardJson"])["mosaicLayout"]["tiles"]
    ]
    assert {
        "Outbox backlog (events not yet published)",
        "Outbox backlog (billing) (events not yet published)",
    } <= set(titles)


def test_adding_an_outbox_changes_no_urn_of_the_first(prod_config: dict[str, Any]) -> None:
    before = {r.urn for r in program(dict(prod_config)).resources}
    after = {r.urn for r in program(prod_config, **{"events-infra:outboxes": [BILLING]}).resources}
    assert before < after


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {
                "events-infra:outboxes": [
                    {
                        **BILLING,
                        "database": {**EXISTING, "instance": "events-outbox", "existing": True},
                    }
                ]
            },
            "one outbox per instance",
        ),
        ({"events-infra:outboxes": [BILLING, BILLING]}, "outbox names must be unique"),
        ({"events-infra:outboxes": [{**BILLING, "name": "Billing!"}]}, "a short id"),
    ],
    ids=["same-instance", "same-name", "bad-name"],
)
def test_outboxes_that_cannot_work_are_refused(
    prod_config: dict[str, Any], change: dict[str, Any], message: str
) -> None:
    prod_config["events-infra:database"]["region"] = "asia-south1"
    config = {**prod_config, **change}
    with pytest.raises(TopologyError, match=message):
        topology_from_config(config, set())


def test_outboxes_need_a_relay(prod_config: dict[str, Any]) -> None:
    del prod_config["events-infra:relay"]
    prod_config["events-infra:database"] = {"region": "asia-south1"}
    prod_config["events-infra:outboxes"] = [
        {
            **BILLING,
            "database": {
                **BILLING["database"],
                "private_network": None,
                "subnetwork": None,
                "migration_principal": None,
            },
        }
    ]
    with pytest.raises(TopologyError, match="each outbox database gets its own relay"):
        topology_from_config(prod_config, set())
