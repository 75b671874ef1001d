"""`dlq doctor`'s Cloud SQL part: each outbox database the stack names, read from the Cloud SQL
Admin API (read-only) and compared with the model by the comparison `adopt plan` uses.

An instance the stack manages gets one finding per field `OutboxDatabase` sets (tier, edition,
availability, version, region, backups, PITR and their retention, private network, flags,
deletion protection): a console edit there is invisible to Pulumi until a refresh, and `up`
does not revert a field the program did not change. An instance a service owns
(`existing: true`) is checked only for what the stack relies on. Unreadable is "not checked".
"""

from __future__ import annotations

from typing import Any

from events_infra.dlq.findings import Finding, drift_detail
from events_infra.stack_config import live_sql
from events_infra.stack_config.topology import StackConfig

SQL_UNREAD = (
    "not checked: the emulator has no Cloud SQL (set EVENTSCTL_SQLADMIN_ENDPOINT to a Cloud SQL "
    "Admin API, or run against the project)"
)
_DENIED = "not checked: reading Cloud SQL needs roles/cloudsql.viewer on the project"


def check_databases(
    clients: tuple[Any, Any] | None, topology: StackConfig, note: str | None = None
) -> list[Finding]:
    """Findings for every outbox database (none when the stack has no outbox)."""
    from google.api_core import exceptions as gexc

    from events_infra.pubsub.api_calls import bounded, error_detail

    databases = list(live_sql.outbox_databases(topology))
    if not databases:
        return []
    project = topology.project
    if clients is None:
        return [Finding("cloud-sql", f"projects/{project}", note or SQL_UNREAD, None)]
    instances, dbs = clients

    def unread(err: Exception) -> str:
        if isinstance(err, gexc.PermissionDenied):
            return f"{_DENIED} ({error_detail(err)})"
        return f"not checked: the Cloud SQL Admin API did not answer ({error_detail(err)})"

    found: list[Finding] = []
    for _, config in databases:
        path = f"projects/{project}/instances/{config.instance}"
        request = {"project": project, "instance": config.instance}
        try:
            live = instances.get(request=request, **bounded())
        except gexc.NotFound:
            live = None
        except (gexc.GoogleAPICallError, gexc.RetryError) as err:
            found.append(Finding("cloud-sql-instance", path, unread(err), None))
            continue
        if config.existing:
            found += _prerequisites(path, live, config)
        elif live is None:
            missing = "missing: `pulumi up` creates it (the outbox has nowhere to live until then)"
            found.append(Finding("cloud-sql-instance", path, missing, False))
        else:
            by_field = {d.field: d for d in live_sql.instance_diff(live, config, topology)}
            for field in live_sql.INSTANCE_FIELDS:
                check = f"cloud-sql-{field.replace('_', '-')}"
                d = by_field.get(field)
                if d is None:
                    found.append(Finding(check, path, "as the stack declares", True))
                else:
                    found.append(Finding(check, path, drift_detail(d), False, d.change))
        if live is None:
            continue
        database = f"{path}/databases/{config.database}"
        try:
            dbs.get(request={**request, "database": config.database}, **bounded())
            found.append(Finding("cloud-sql-database", database, "exists", True))
        except gexc.NotFound:
            gone = "missing: the outbox schema has no database"
            found.append(Finding("cloud-sql-database", database, gone, False))
        except (gexc.GoogleAPICallError, gexc.RetryError) as err:
            found.append(Finding("cloud-sql-database", database, unread(err), None))
    return found


def _prerequisites(path: str, live: Any | None, config: Any) -> list[Finding]:
    missing = live_sql.prerequisites(live, config)
    if not missing:
        ok = "the service's own instance has what the stack relies on (region, PostgreSQL 13+, "
        ok += "IAM logins, network)"
        return [Finding("cloud-sql-prerequisites", path, ok, True)]
    return [
        Finding(
            "cloud-sql-prerequisite",
            path,
            f"{d.field} is {d.live}, the stack needs {d.declared}: {d.how}",
            False,
            d.change,
        )
        for d in missing
    ]
