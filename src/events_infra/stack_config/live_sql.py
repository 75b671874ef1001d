"""A live Cloud SQL instance against the stack model, field by field, in one place.

`eventsctl adopt plan` (an instance of the stack's name that exists before the first `up`) and
`eventsctl dlq doctor` (drift after it) compare with these functions. Live instances are the
Cloud SQL Admin API's proto-plus messages (`google-cloud-sql`); what the program declares is
read from the model, as `OutboxDatabase` sets it. Each difference is classed, from live back to
declared, with `change_classes`' facts: applied in place (a tier, edition or availability change
restarts the instance), in place losing data, or a migration (Cloud SQL cannot move or downgrade
an instance). An instance the stack relies on but never manages (`existing: true`) is checked
only for what the stack needs of it (`prerequisites`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from events_infra.stack_config import change_classes
from events_infra.stack_config import pulumi_names as names
from events_infra.stack_config.database_config import DatabaseConfig
from events_infra.stack_config.live_diff import (
    DISRUPTIVE,
    IN_PLACE,
    MIGRATION,
    RESTARTS,
    Difference,
)
from events_infra.stack_config.topology import StackConfig, merge_labels

PREREQUISITE = "prerequisite"
"""Something the stack relies on but does not manage (an `existing` database) is missing or
wrong: `up` would fail half-way; fix the live resource or the config first."""
IAM_AUTH_FLAG = "cloudsql.iam_authentication"
LOGICAL_DECODING_FLAG = "cloudsql.logical_decoding"
_PG_MAJOR = re.compile(r"^POSTGRES_(\d+)")

INSTANCE_FIELDS = (
    "region", "database_version", "tier", "edition", "availability_type", "backups",
    "point_in_time_recovery", "backup_start_time", "retained_backups",
    "transaction_log_retention_days", "private_network", "public_ip", "ssl_mode", "flags",
    "deletion_protection", "labels",
)  # fmt: skip
"""What `instance_diff` compares (each a value `OutboxDatabase` sets on the instance)."""

_CLASS = {
    change_classes.IN_PLACE: IN_PLACE,
    change_classes.RESTART: RESTARTS,
    change_classes.DATA_LOSS: DISRUPTIVE,
    change_classes.REPLACEMENT: MIGRATION,
}
_NEW_INSTANCE = (
    "Cloud SQL cannot move or downgrade an instance: give the stack another database.instance "
    "(a new instance), or match the config to this one"
)


def outbox_databases(topology: StackConfig) -> Iterator[tuple[str, DatabaseConfig]]:
    """(component logical name, config) of every outbox database, as the program names them."""
    if topology.database is not None:
        yield names.outbox_database(), topology.database
    for outbox in topology.outboxes:
        yield names.outbox_database(outbox.name), outbox.database


def has_outbox_databases(topology: StackConfig) -> bool:
    return topology.database is not None or bool(topology.outboxes)


def declared_flags(config: DatabaseConfig) -> dict[str, str]:
    """The database flags `OutboxDatabase` sets (Cloud SQL replaces the whole list on update)."""
    flags = {IAM_AUTH_FLAG: "on"}
    if config.logical_decoding:
        flags[LOGICAL_DECODING_FLAG] = "on"
    return flags


def network_path(value: str | None) -> str | None:
    """A VPC network as `projects/P/global/networks/N`, however the API spells it (a leading
    slash, or the full compute URL), so equal networks compare equal."""
    if not value:
        return None
    return value.removeprefix("https://www.googleapis.com/compute/v1/").lstrip("/")


def _live_values(live: Any) -> dict[str, Any]:
    settings = live.settings
    backups = settings.backup_configuration
    return {
        "region": live.region,
        "database_version": _enum(live.database_version),
        "tier": settings.tier,
        "edition": _enum(settings.edition),
        "availability_type": _enum(settings.availability_type),
        "backups": bool(backups.enabled),
        "point_in_time_recovery": bool(backups.point_in_time_recovery_enabled),
        "retained_backups": int(backups.backup_retention_settings.retained_backups or 0),
        "transaction_log_retention_days": int(backups.transaction_log_retention_days or 0),
        "backup_start_time": backups.start_time or None,
        "private_network": network_path(settings.ip_configuration.private_network),
        "public_ip": bool(settings.ip_configuration.ipv4_enabled),
        "ssl_mode": _enum(settings.ip_configuration.ssl_mode),
        "flags": {f.name: f.value for f in settings.database_flags},
        "deletion_protection": bool(settings.deletion_protection_enabled),
        "labels": dict(settings.user_labels),
    }


def _declared_values(config: DatabaseConfig, topology: StackConfig) -> dict[str, Any]:
    return {
        "region": config.region,
        "database_version": config.database_version,
        "tier": config.tier,
        "edition": config.edition,
        "availability_type": config.availability_type,
        "backups": True,
        "point_in_time_recovery": True,
        "retained_backups": config.retained_backups,
        "transaction_log_retention_days": config.transaction_log_retention_days,
        "backup_start_time": config.backup_start_time,
        "private_network": network_path(config.private_network),
        "public_ip": not config.private_ip_only,
        "ssl_mode": "ENCRYPTED_ONLY",
        "flags": declared_flags(config),
        "deletion_protection": topology.production,
        "labels": merge_labels(topology.labels, config.labels),
    }


_RULE_SETTING = {
    "region": "region",
    "database_version": "database_version",
    "tier": "tier",
    "edition": "edition",
    "availability_type": "availability_type",
    "backups": "backups_enabled",
    "point_in_time_recovery": "point_in_time_recovery",
    "retained_backups": "retained_backups",
    "transaction_log_retention_days": "transaction_log_retention_days",
    "private_network": "private_network",
    "flags": "logical_decoding",
}


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "(none)"
    if value is None or value == "":
        return "(unset)"
    return str(value)


def instance_diff(live: Any, config: DatabaseConfig, topology: StackConfig) -> list[Difference]:
    """What the next `up` would change on a live instance the stack manages, per field."""
    have, want = _live_values(live), _declared_values(config, topology)
    # labels only others set are left alone (the provider merges user labels it does not own)
    have["labels"] = {k: v for k, v in have["labels"].items() if k in want["labels"]}
    found = []
    for field in INSTANCE_FIELDS:
        if have[field] == want[field]:
            continue
        setting = _RULE_SETTING.get(field)
        change, why = (IN_PLACE, "")
        if setting is not None:  # from live back to declared
            change_class, why = change_classes.classify(
                "database", setting, have[field], want[field]
            )
            change = _CLASS.get(change_class, IN_PLACE)
        if change == MIGRATION:
            why = _NEW_INSTANCE
        found.append(Difference(field, _shown(have[field]), _shown(want[field]), change, why))
    return found


def prerequisites(live: Any | None, config: DatabaseConfig) -> list[Difference]:
    """What the stack needs of an instance it relies on (`existing: true`) and does not manage."""
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
    version = _enum(live.database_version)
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
    network = network_path(live.settings.ip_configuration.private_network)
    if config.private_network and network != network_path(config.private_network):
        found.append(
            Difference(
                "private_network", network or "(no private IP)", config.private_network,
                PREREQUISITE,
                "the relay reaches the instance's private IP through this network: correct "
                "database.private_network or give the instance a private IP on it",
            )
        )  # fmt: skip
    return found


def _enum(value: Any) -> str:
    """A proto-plus enum's name ('' for the unspecified value)."""
    name = getattr(value, "name", str(value))
    return "" if name.endswith("UNSPECIFIED") else name
