"""The `database` section of a stack: the Cloud SQL instance that holds the outbox."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from components.config_types import Labels, Strict, between, email, fail, matches

_PG_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SQL_INSTANCE = re.compile(r"^[a-z][a-z0-9-]{0,96}[a-z0-9]$")
REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
"""A GCP region id such as asia-south1."""
_NETWORK = re.compile(r"^projects/[^/]+/global/networks/[^/]+$")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
_TIER = re.compile(r"^db-[a-z0-9-]+$")
_PG_VERSION = re.compile(r"^POSTGRES_(\d+)$")


def _postgres_version(value: str) -> str:
    match = _PG_VERSION.match(value)
    if not match or not 13 <= int(match.group(1)) <= 17:
        raise fail(
            "pg_version",
            "{value} is not supported: use POSTGRES_13 to POSTGRES_17 (the outbox needs "
            "pg_current_xact_id, new in 13)",
            value=repr(value),
        )
    return value


class DatabaseConfig(Strict):
    """The Cloud SQL for PostgreSQL instance holding the transactional outbox."""

    region: Annotated[str, matches(REGION, "a GCP region such as asia-south1")]
    instance: Annotated[
        str,
        matches(_SQL_INSTANCE, "a Cloud SQL instance id (lowercase letters, digits, hyphens)"),
    ] = "events-outbox"
    database: Annotated[
        str, matches(_PG_IDENT, "a PostgreSQL database name ([a-z_][a-z0-9_]*, ≤ 63)")
    ] = "events"
    database_version: Annotated[str, AfterValidator(_postgres_version)] = "POSTGRES_16"
    tier: Annotated[str, matches(_TIER, "a Cloud SQL tier such as db-custom-2-7680")] = (
        "db-custom-1-3840"
    )
    availability_type: Literal["ZONAL", "REGIONAL"] = "ZONAL"
    backup_start_time: Annotated[str, matches(_HHMM, "a UTC time HH:MM")] = "02:00"
    retained_backups: Annotated[int, between(1, 365, why="Cloud SQL's limit")] = 7
    transaction_log_retention_days: Annotated[
        int, between(1, 7, why="Cloud SQL's limit for point-in-time recovery")
    ] = 7
    private_network: (
        Annotated[str, matches(_NETWORK, "a VPC network (projects/P/global/networks/N)")] | None
    ) = None
    logical_decoding: bool = False
    password_user: Annotated[str, matches(_PG_IDENT, "a PostgreSQL user name")] | None = None
    migration_principal: Annotated[str, AfterValidator(email)] | None = None
    labels: Labels = Field(default_factory=dict)

    @property
    def private_ip_only(self) -> bool:
        return self.private_network is not None
