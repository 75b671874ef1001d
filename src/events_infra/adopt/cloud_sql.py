"""The Cloud SQL side of `eventsctl adopt plan`: each outbox database the stack names, read
from the Cloud SQL Admin API (read-only: `roles/cloudsql.viewer`).

Two cases, as the stack config has them (`database`, `outboxes[].database`):

- the stack creates the instance (greenfield): if one of that name already exists, `pulumi up`
  would fail on it (409; Cloud SQL also keeps a deleted instance's name for up to a week), so it
  is listed as existing and imported with the program's own names, and what the model would
  change is classed — a region or a lower major version cannot change (a new instance), a tier,
  edition or availability change restarts it;
- the instance is the service's own (`existing: true`): the stack never creates, changes or
  imports it, but relies on it, so what it relies on is checked before `up` fails half-way:
  the instance exists in the declared region, runs PostgreSQL 13 or newer, has the database,
  has `cloudsql.iam_authentication=on` (the writer, relay and migration logins are IAM
  database users: Cloud SQL refuses them otherwise) and sits on the declared private network.
  Each miss is a prerequisite: fix the instance, or the config.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from typing import Any

from events_infra.adopt.model import IN_PLACE, MIGRATION, PREREQUISITE, Difference, Resource
from events_infra.pubsub.api_calls import loopback_client, loopback_endpoint
from events_infra.stack_config import pulumi_names as names
from events_infra.stack_config.database_config import DatabaseConfig
from events_infra.stack_config.topology import StackConfig

SQLADMIN_ENDPOINT_ENV = "EVENTSCTL_SQLADMIN_ENDPOINT"
"""host:port of a Cloud SQL Admin API to use instead of Google's (plaintext, loopback only)."""
IAM_AUTH_FLAG = "cloudsql.iam_authentication"
_PG_MAJOR = re.compile(r"^POSTGRES_(\d+)")


def outbox_databases(topology: StackConfig) -> Iterator[tuple[str, DatabaseConfig]]:
    """(component logical name, config) of every outbox database, as the program names them."""
    if topology.database is not None:
        yield names.outbox_database(), topology.database
    for outbox in topology.outboxes:
        yield names.outbox_database(outbox.name), outbox.database


def sql_admin_clients() -> tuple[Any, Any] | None:
    """(instances, databases) clients of the Cloud SQL Admin API, or None in local mode (the
    emulator has no Cloud SQL: PUBSUB_EMULATOR_HOST set and no SQLADMIN endpoint given)."""
    from google.cloud import sqladmin_v1

    from events_infra.adopt.model import AdoptError

    endpoint = loopback_endpoint(SQLADMIN_ENDPOINT_ENV, AdoptError)
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


def database_resources(
    topology: StackConfig,
    instances: Any,
    databases: Any,
    get: Callable[..., Any | None],
) -> list[Resource]:
    """One Resource per instance and database the stack creates or relies on. `get(call,
    what, **request)` makes one bounded read, None for NOT_FOUND (plan.py's)."""
    project = topology.project
    found: list[Resource] = []
    for component, config in outbox_databases(topology):
        instance_id = f"projects/{project}/instances/{config.instance}"
        database_id = f"{instance_id}/databases/{config.database}"
        live = get(
            instances.get, f"Cloud SQL instance {config.instance!r}",
            project=project, instance=config.instance,
        )  # fmt: skip
        live_db = None
        if live is not None:
            live_db = get(
                databases.get, f"database {config.database!r} on {config.instance!r}",
                project=project, instance=config.instance, database=config.database,
            )  # fmt: skip
        instance = Resource(
            names.SQL_INSTANCE_TYPE, names.sql_instance(component), instance_id,
            exists=live is not None, parent=component, parent_type=names.OUTBOX_DATABASE_TYPE,
            managed=not config.existing,
        )  # fmt: skip
        database = Resource(
            names.SQL_DATABASE_TYPE, names.sql_database(component), database_id,
            exists=live_db is not None, parent=component, parent_type=names.OUTBOX_DATABASE_TYPE,
            managed=not config.existing,
        )  # fmt: skip
        if config.existing:
            instance.differences = _prerequisites(live, config)
            if live is not None and live_db is None:
                database.differences.append(
                    Difference(
                        "database", "(absent)", config.database, PREREQUISITE,
                        "create it where the service keeps its tables (the outbox must share "
                        "their database), or correct database.database",
                    )
                )  # fmt: skip
        elif live is not None:
            instance.differences = _instance_diff(live, config)
        found += [instance, database]
    return found


def _prerequisites(live: Any | None, config: DatabaseConfig) -> list[Difference]:
    if live is None:
        return [
            Difference(
                "instance", "(absent)", f"{config.instance} in {config.region}", PREREQUISITE,
                "an `existing: true` instance is not created by the stack: correct "
                "database.instance / gcp:project, or let the stack create one (existing: false)",
            )
        ]  # fmt: skip
    found = []
    if live.region != config.region:
        found.append(
            Difference(
                "region", live.region, config.region, PREREQUISITE,
                "set database.region to the instance's region (the connection name and the "
                "relay's region follow it)",
            )
        )  # fmt: skip
    version = _version(live)
    major = _PG_MAJOR.match(version)
    if not major or int(major.group(1)) < 13:
        found.append(
            Difference(
                "database_version", version, "POSTGRES_13 or newer", PREREQUISITE,
                "the outbox needs PostgreSQL 13+ (pg_current_xact_id): upgrade the instance",
            )
        )  # fmt: skip
    flags = {f.name: f.value for f in live.settings.database_flags}
    if flags.get(IAM_AUTH_FLAG) != "on":
        found.append(
            Difference(
                f"flag {IAM_AUTH_FLAG}", flags.get(IAM_AUTH_FLAG, "(unset)"), "on", PREREQUISITE,
                "the writer, relay and migration logins are IAM database users: set the flag "
                "(gcloud sql instances patch --database-flags replaces the whole list: keep the "
                "instance's other flags in it)",
            )
        )  # fmt: skip
    network = live.settings.ip_configuration.private_network
    if config.private_network and network != config.private_network:
        found.append(
            Difference(
                "private_network", network or "(no private IP)", config.private_network,
                PREREQUISITE,
                "the relay reaches the instance's private IP through this network: correct "
                "database.private_network or give the instance a private IP on it",
            )
        )  # fmt: skip
    return found


def _instance_diff(live: Any, config: DatabaseConfig) -> list[Difference]:
    """What the next `up` would change on an instance of the stack's name that exists already."""
    found = []
    new_instance = (
        "Cloud SQL cannot move or downgrade an instance: give the stack another "
        "database.instance (a new instance), or match the config to this one"
    )
    if live.region != config.region:
        found.append(Difference("region", live.region, config.region, MIGRATION, new_instance))
    have, want = _version(live), config.database_version
    have_major, want_major = _PG_MAJOR.match(have), _PG_MAJOR.match(want)
    if have != want:
        lower = have_major and want_major and int(want_major.group(1)) < int(have_major.group(1))
        change, how = (
            (MIGRATION, new_instance) if lower else (IN_PLACE, "a major version upgrade: downtime")
        )
        found.append(Difference("database_version", have, want, change, how))
    settings = live.settings
    restart = "applied in place; the instance restarts"
    for field, have_value, want_value in (
        ("tier", settings.tier, config.tier),
        ("edition", _enum(settings.edition), config.edition),
        ("availability_type", _enum(settings.availability_type), config.availability_type),
    ):
        if have_value != want_value:
            found.append(Difference(field, have_value or "(unset)", want_value, IN_PLACE, restart))
    return found


def _version(live: Any) -> str:
    return _enum(live.database_version)


def _enum(value: Any) -> str:
    """A proto-plus enum's name ('' for the unspecified value)."""
    name = getattr(value, "name", str(value))
    return "" if name.endswith("UNSPECIFIED") else name
