"""The `database` section of a stack: the Cloud SQL instance that holds the outbox."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from events_infra.stack_config import limits
from events_infra.stack_config.config_types import Labels, Strict, between, email, fail, matches

_PG_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SQL_INSTANCE = re.compile(r"^[a-z][a-z0-9-]{0,96}[a-z0-9]$")
REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
"""A GCP region id such as asia-south1."""
_NETWORK = re.compile(r"^projects/[^/]+/global/networks/[^/]+$")
_SUBNETWORK = re.compile(r"^projects/[^/]+/regions/([a-z]+-[a-z]+[0-9]+)/subnetworks/[^/]+$")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
_TIER = re.compile(r"^db-[A-Za-z0-9-]+$")
_PG_VERSION = re.compile(r"^POSTGRES_(\d+)$")
_SHARED_CORE = ("db-f1-micro", "db-g1-small")
_CUSTOM = re.compile(r"^db-custom-(\d+)-(\d+)$")
_PERF_OPTIMIZED = re.compile(r"^db-perf-optimized-N-(\d+)$")
_PERF_OPTIMIZED_CPUS = (2, 4, 8, 16, 32, 48, 64, 80, 96, 128)


def tier_problem(tier: str, edition: str) -> str | None:
    """Why Cloud SQL for PostgreSQL would refuse `tier` on `edition` at create time, or None.

    From the provider's `settings.tier` / `settings.edition` docs and Cloud SQL's machine types:
    PostgreSQL takes shared-core (db-f1-micro, db-g1-small) and custom (db-custom-CPUS-MB) tiers
    on ENTERPRISE only; ENTERPRISE_PLUS takes only db-perf-optimized-N-CPUS. A custom machine
    has 1 or an even number of vCPUs up to 96 and 0.9–6.5 GB per vCPU (at least 3,840 MB) in
    multiples of 256 MB.
    """
    custom, perf = _CUSTOM.match(tier), _PERF_OPTIMIZED.match(tier)
    if tier in _SHARED_CORE or custom:
        if edition != "ENTERPRISE":
            return (
                f"{tier} runs only on the ENTERPRISE edition, not {edition} (which takes "
                "db-perf-optimized-N-* tiers): set edition: ENTERPRISE or change the tier"
            )
        if custom:
            return _custom_problem(tier, int(custom.group(1)), int(custom.group(2)))
        return None
    if perf:
        if edition != "ENTERPRISE_PLUS":
            return (
                f"{tier} runs only on the ENTERPRISE_PLUS edition, not {edition}: set "
                "edition: ENTERPRISE_PLUS or use a db-custom-CPUS-MB tier"
            )
        if int(perf.group(1)) not in _PERF_OPTIMIZED_CPUS:
            sizes = ", ".join(map(str, _PERF_OPTIMIZED_CPUS))
            return f"{tier}: db-perf-optimized-N comes with {sizes} vCPUs"
        return None
    return (
        f"{tier} is not a Cloud SQL for PostgreSQL machine type: use db-f1-micro, "
        "db-g1-small or db-custom-CPUS-MB (ENTERPRISE), or db-perf-optimized-N-CPUS "
        "(ENTERPRISE_PLUS)"
    )


def _custom_problem(tier: str, cpus: int, memory_mb: int) -> str | None:
    if not (cpus == 1 or (cpus % 2 == 0 and 2 <= cpus <= 96)):
        return f"{tier}: a custom machine has 1 or an even number of vCPUs up to 96"
    per_cpu_gb = memory_mb / 1024 / cpus
    if memory_mb % 256 or memory_mb < 3840 or not 0.9 <= per_cpu_gb <= 6.5:
        return (
            f"{tier}: memory must be a multiple of 256 MB, at least 3840 MB and 0.9–6.5 GB "
            f"per vCPU (this is {per_cpu_gb:.2f} GB per vCPU)"
        )
    return None


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


INSTANCE_SETTINGS = (
    "database_version",
    "edition",
    "tier",
    "availability_type",
    "backup_start_time",
    "retained_backups",
    "transaction_log_retention_days",
    "logical_decoding",
    "labels",
)
"""Keys that configure an instance the stack creates; meaningless for an `existing` one."""


class DatabaseConfig(Strict):
    """The Cloud SQL for PostgreSQL instance holding the transactional outbox."""

    existing: bool = False
    """The instance and database exist already (the service's own, holding its business
    tables): the stack adds the outbox schema, the users and grants and the relay to them and
    never creates, changes or deletes the instance or the database. The outbox must live in the
    database of the transactions it records, or writing an event is a dual write."""
    region: Annotated[str, matches(REGION, "a GCP region such as asia-south1")]
    instance: Annotated[
        str,
        matches(_SQL_INSTANCE, "a Cloud SQL instance id (lowercase letters, digits, hyphens)"),
    ] = "events-outbox"
    database: Annotated[
        str, matches(_PG_IDENT, "a PostgreSQL database name ([a-z_][a-z0-9_]*, ≤ 63)")
    ] = "events"
    database_version: Annotated[str, AfterValidator(_postgres_version)] = "POSTGRES_16"
    edition: Literal["ENTERPRISE", "ENTERPRISE_PLUS"] = limits.DEFAULT_SQL_EDITION  # type: ignore[assignment]
    """Always sent to Cloud SQL: left unset, PostgreSQL 16+ would default to ENTERPRISE_PLUS."""
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
    subnetwork: (
        Annotated[str, matches(_SUBNETWORK, "a subnetwork (projects/P/regions/R/subnetworks/S)")]
        | None
    ) = None
    """The subnet the relay and the migration job reach the private IP through (Cloud Run's
    Direct VPC egress), in the database's region; required with `private_network`: left out,
    Cloud Run uses the subnet named like the network, which may not exist."""
    private_services_access: Literal["create", "existing"] | None = None
    """How Cloud SQL's private IP is reached: `create` declares the allocated range (/16) and
    the Service Networking connection on `private_network`; `existing` relies on the one the
    project has (a private-IP Cloud SQL instance needs one). Required when the stack creates a
    private-IP instance."""
    logical_decoding: bool = False
    password_user: Annotated[str, matches(_PG_IDENT, "a PostgreSQL user name")] | None = None
    migration_principal: Annotated[str, AfterValidator(email)] | None = None
    labels: Labels = Field(default_factory=dict)

    @field_validator("tier")
    @classmethod
    def _tier_fits_edition(cls, tier: str, info: ValidationInfo) -> str:
        """Reported on `tier` (the key to change, usually); `edition` is validated first."""
        edition = info.data.get("edition")
        problem = tier_problem(tier, edition) if edition else None
        if problem:
            raise fail("tier_edition", "{problem}", problem=problem)
        return tier

    @model_validator(mode="after")
    def _existing_takes_no_instance_settings(self) -> DatabaseConfig:
        settings = [key for key in INSTANCE_SETTINGS if key in self.model_fields_set]
        if self.existing and settings:
            raise fail(
                "existing_instance",
                "{keys}: the stack does not manage an existing instance (existing: true); "
                "remove {them} or let the stack create the instance",
                keys=", ".join(settings),
                them="it" if len(settings) == 1 else "them",
            )
        return self

    @model_validator(mode="after")
    def _private_ip_is_reachable(self) -> DatabaseConfig:
        if self.private_network is None:
            if self.subnetwork or self.private_services_access:
                raise fail(
                    "private_network",
                    "subnetwork and private_services_access apply to a private IP: set "
                    "private_network too, or remove them",
                )
            return self
        if self.subnetwork is None:
            raise fail(
                "subnetwork",
                "private_network needs database.subnetwork (the subnet in {region} the relay "
                "and the migration job egress through): without it Cloud Run uses one named "
                "like the network, which may not exist",
                region=self.region,
            )
        found = _SUBNETWORK.match(self.subnetwork)
        if found and found.group(1) != self.region:
            raise fail(
                "subnetwork",
                "database.subnetwork is in {there}, the database in {here}: use a subnet of {here}",
                there=found.group(1),
                here=self.region,
            )
        if self.existing and self.private_services_access == "create":
            raise fail(
                "private_services_access",
                "an existing private-IP instance has its private services access already: "
                "use private_services_access: existing or leave it out",
            )
        if not self.existing and self.private_services_access is None:
            raise fail(
                "private_services_access",
                "a private-IP instance needs private services access on {network}: set "
                "database.private_services_access to create (the stack declares the range and "
                "the connection) or existing (the project has one)",
                network=self.private_network,
            )
        return self

    @property
    def private_ip_only(self) -> bool:
        return self.private_network is not None
