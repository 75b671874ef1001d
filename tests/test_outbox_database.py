"""`OutboxDatabase` under Pulumi mocks (dev and prod), and its migration provider against a real
PostgreSQL server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pulumi
import pytest
from pulumi.runtime import rpc
from pulumi.runtime.sync_await import _sync_await

from events_infra.components.offline import Run, resolve, run_program
from events_infra.components.outbox_database import iam_database_user
from events_infra.components.outbox_schema import MigrationProvider
from events_infra.outbox.schema import load_migrations, migrations_digest

STACKS = Path(__file__).resolve().parent.parent / "stacks"
INSTANCE = "gcp:sql/databaseInstance:DatabaseInstance"
DATABASE = "gcp:sql/database:Database"
USER = "gcp:sql/user:User"
PASSWORD = "random:index/randomPassword:RandomPassword"
SCHEMA = "pulumi-python:dynamic:Resource"


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig


def test_prod_instance(prod: Run) -> None:
    [instance] = prod.of_type(INSTANCE)
    inputs = instance.inputs
    assert (inputs["name"], inputs["region"], inputs["databaseVersion"]) == (
        "events-outbox",
        "asia-south1",
        "POSTGRES_16",
    )
    assert inputs["deletionProtection"] is True
    settings = inputs["settings"]
    assert settings["tier"] == "db-custom-2-7680"
    assert settings["availabilityType"] == "REGIONAL"
    assert settings["deletionProtectionEnabled"] is True
    assert settings["backupConfiguration"] == {
        "enabled": True,
        "pointInTimeRecoveryEnabled": True,
        "startTime": "02:00",
        "transactionLogRetentionDays": 7,
        "backupRetentionSettings": {"retainedBackups": 14, "retentionUnit": "COUNT"},
    }
    assert settings["ipConfiguration"] == {
        "ipv4Enabled": False,
        "privateNetwork": "projects/cotton-erp/global/networks/cotton-erp-vpc",
        "sslMode": "ENCRYPTED_ONLY",
    }
    assert settings["databaseFlags"] == [{"name": "cloudsql.iam_authentication", "value": "on"}]
    assert instance.protect is True


def test_dev_instance(dev: Run) -> None:
    [instance] = dev.of_type(INSTANCE)
    settings = instance.inputs["settings"]
    assert instance.inputs["deletionProtection"] is False
    assert settings["deletionProtectionEnabled"] is False
    assert instance.protect is False
    assert settings["availabilityType"] == "ZONAL"
    assert settings["tier"] == "db-f1-micro"
    assert settings["backupConfiguration"]["enabled"] is True
    assert settings["backupConfiguration"]["pointInTimeRecoveryEnabled"] is True
    assert settings["ipConfiguration"] == {"ipv4Enabled": True, "sslMode": "ENCRYPTED_ONLY"}
    assert settings["databaseFlags"] == [
        {"name": "cloudsql.iam_authentication", "value": "on"},
        {"name": "cloudsql.logical_decoding", "value": "on"},
    ]


def test_application_database(prod: Run, dev: Run) -> None:
    for run, protect in ((prod, True), (dev, False)):
        [database] = run.of_type(DATABASE)
        [instance] = run.of_type(INSTANCE)
        assert database.inputs["name"] == "events"
        assert database.inputs["instance"] == instance.inputs["name"]
        assert database.protect is protect


def test_password_user_gets_a_generated_secret_password(dev: Run) -> None:
    [generated] = dev.of_type(PASSWORD)
    assert generated.inputs["length"] >= 32
    [user] = [u for u in dev.of_type(USER) if u.inputs["type"] == "BUILT_IN"]
    assert user.inputs["name"] == "events_app"
    assert is_secret(user.inputs["password"])
    db = dev.outputs["outbox_db"]
    assert _sync_await(db.password.is_secret()) is True


def test_no_password_anywhere_in_prod(prod: Run) -> None:
    assert prod.of_type(PASSWORD) == []
    assert all(u.inputs["type"] != "BUILT_IN" for u in prod.of_type(USER))


def test_password_never_reaches_stack_outputs_in_plain_text(dev: Run) -> None:
    password = resolve(dev.outputs["outbox_db"].password)
    plain = json.dumps({k: v for k, v in dev.exports.items() if not is_secret(v)}, default=str)
    assert password not in plain


def test_migration_user_and_schema_step(prod: Run) -> None:
    """Prod's schema is owned by the migration job's own account, not by the deployer (which
    used to be a cloudsqlsuperuser login besides running every `up`)."""
    user = prod.named("outbox-migration-user")
    assert user.inputs["type"] == "CLOUD_IAM_SERVICE_ACCOUNT"
    assert user.inputs["name"] == "outbox-migrate@cotton-erp.iam"
    assert user.inputs["databaseRoles"] == ["cloudsqlsuperuser"]
    assert prod.named("outbox-migration-account").urn in user.dependencies  # the account first
    assert not [u for u in prod.of_type(USER) if "deployer" in u.inputs["name"]]
    [schema] = prod.of_type(SCHEMA)
    assert schema.inputs["instance_connection_name"] == "cotton-erp:asia-south1:events-outbox"
    assert schema.inputs["database"] == "events"
    assert schema.inputs["user"] == "outbox-migrate@cotton-erp.iam"
    assert schema.inputs["private_ip"] is True
    assert schema.inputs["migrations_digest"] == migrations_digest()
    assert schema.inputs["provider_class"].startswith("events_infra.components.")
    [database] = prod.of_type(DATABASE)
    assert {database.urn, user.urn} <= set(schema.dependencies)
    assert prod.exports["outbox_connection_name"] == "cotton-erp:asia-south1:events-outbox"


def test_stack_without_database_declares_none(prod_config: dict[str, Any]) -> None:
    del prod_config["events-infra:database"]
    del prod_config["events-infra:relay"]  # no outbox, nothing to relay
    config = {k: v if isinstance(v, str) else json.dumps(v) for k, v in prod_config.items()}
    run = run_program(config)
    assert [r for r in run.resources if r.type.startswith(("gcp:sql/", "pulumi-python"))] == []
    assert run.of_type("gcp:cloudrunv2/service:Service") == []


def test_a_relay_without_a_database_is_refused(prod_config: dict[str, Any]) -> None:
    del prod_config["events-infra:database"]
    config = {k: v if isinstance(v, str) else json.dumps(v) for k, v in prod_config.items()}
    with pytest.raises(pulumi.RunError, match="events-infra:relay: the relay publishes the outbox"):
        run_program(config)


@pytest.mark.parametrize(
    ("email", "expected"),
    [
        ("deployer@p.iam.gserviceaccount.com", ("deployer@p.iam", "CLOUD_IAM_SERVICE_ACCOUNT")),
        ("alice@cotton.example", ("alice@cotton.example", "CLOUD_IAM_USER")),
    ],
)
def test_iam_database_user_names(email: str, expected: tuple[str, str]) -> None:
    assert iam_database_user(email) == expected


# --- the provider `pulumi up` runs, against real PostgreSQL -----------------------------------


class LocalMigrationProvider(MigrationProvider):
    """The real provider; only the Cloud SQL connector is swapped for a local connection."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _connect(self, props: dict[str, Any]) -> Any:
        return psycopg.connect(self.url)


def props(digest: str | None = None) -> dict[str, Any]:
    return {
        "instance_connection_name": "cotton-erp:asia-south1:events-outbox",
        "database": "events",
        "user": "deployer@cotton-erp.iam",
        "private_ip": True,
        "migrations_digest": digest or migrations_digest(),
    }


def test_provider_create_applies_schema_and_update_is_idempotent(database_url: str) -> None:
    provider = LocalMigrationProvider(database_url)
    created = provider.create(props())
    assert created.id == "cotton-erp:asia-south1:events-outbox/events"
    shipped = load_migrations()
    assert created.outs["schema_version"] == shipped[-1].version
    assert created.outs["applied"] == [m.filename for m in shipped]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT to_regclass('event_outbox')").fetchone() == ("event_outbox",)

    assert provider.diff(created.id, created.outs, props()).changes is False
    changed = provider.diff(created.id, created.outs, props(digest="new-migration-added"))
    assert changed.changes is True and not changed.replaces
    updated = provider.update(created.id, created.outs, props(digest="new-migration-added"))
    assert updated.outs["applied"] == []
    assert updated.outs["schema_version"] == shipped[-1].version


def test_provider_delete_keeps_the_outbox(database_url: str) -> None:
    provider = LocalMigrationProvider(database_url)
    created = provider.create(props())
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO event_outbox (event_type, aggregate_type, aggregate_id, ordering_key,"
            " payload) VALUES ('t', 'a', gen_random_uuid(), 'k', '{}')"
        )
    provider.delete(created.id, created.outs)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM event_outbox").fetchone() == (1,)
