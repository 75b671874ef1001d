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

from collections.abc import Callable
from typing import Any

from events_infra.adopt.model import PREREQUISITE, AdoptError, Difference, Resource
from events_infra.db import sql_admin
from events_infra.stack_config import pulumi_names as names
from events_infra.stack_config.live_sql import instance_diff, outbox_databases, prerequisites
from events_infra.stack_config.topology import StackConfig

SQLADMIN_ENDPOINT_ENV = sql_admin.SQLADMIN_ENDPOINT_ENV


def sql_admin_clients() -> tuple[Any, Any] | None:
    """(instances, databases) clients, or None in local mode (see `db.sql_admin`)."""
    return sql_admin.sql_admin_clients(AdoptError)


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
            instance.differences = prerequisites(live, config)
            if live is not None and live_db is None:
                database.differences.append(
                    Difference(
                        "database", "(absent)", config.database, PREREQUISITE,
                        "create it where the service keeps its tables (the outbox must share "
                        "their database), or correct database.database",
                    )
                )  # fmt: skip
        elif live is not None:
            instance.differences = instance_diff(live, config, topology)
        found += [instance, database]
    return found
