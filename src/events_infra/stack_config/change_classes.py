"""What a change to a stack setting does to the running resource, in one table.

Pulumi's preview says "update" or "replace"; it does not say that an update expires messages or
restarts a database. Each rule here is a fact about the provider or the API, with its source:

- Pub/Sub subscriptions: `name`, `topic`, `filter` and `enable_message_ordering` force a new
  subscription (pulumi_gcp `SubscriptionArgs`; the provider marks them ForceNew), and a new
  subscription starts empty: the way through is `eventsctl subscription migrate`. Lowering
  `message_retention_duration` expires older retained messages at once (API reference,
  `Subscription.message_retention_duration`). Lowering `max_delivery_attempts` dead-letters
  messages that would still have been retried. Everything else is updated in place.
- Pub/Sub topics: `name` forces a new topic; lowering `message_retention_duration` drops older
  retained messages (`Topic.message_retention_duration`).
- Cloud SQL: `name`, `region` and `database_version` force a new instance in the provider
  (`DatabaseInstanceArgs`); Cloud SQL can upgrade a major version in place (with downtime) but
  never downgrade. Tier, edition and availability type changes restart the instance; lowering
  `retained_backups` or `transaction_log_retention_days` deletes backups and recovery logs;
  a database's `name` forces a new, empty database.

`eventsctl topology diff` classes stack-file changes with it before Pulumi runs,
`eventsctl adopt plan` classes live differences with the same facts, and `eventsctl preview guard`
classes the in-place updates of a `pulumi preview --json` by the provider properties each setting
becomes (PROPERTIES).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from events_infra.stack_config import pulumi_names as names

IN_PLACE = "in place"
RESTART = "restart/downtime"
DATA_LOSS = "data loss"
REPLACEMENT = "replacement"
CREATE = "create"
BLINDS = "alerting off"
"""Nothing is lost, but nobody is paged any more (an alert policy disabled)."""
BLOCKING = (DATA_LOSS, REPLACEMENT)
"""Classes that lose data or a backlog: a reviewer must see them before `up` runs."""

MIGRATE = "declare a successor beside it and `eventsctl subscription migrate OLD --to NEW`"
NEW_INSTANCE = "Cloud SQL cannot do this to an instance: a new instance and a data migration"


@dataclass(frozen=True)
class Rule:
    classify: Callable[[Any, Any], str]
    why: str


def always(change: str) -> Callable[[Any, Any], str]:
    return lambda old, new: change


def lower_is(change: str, otherwise: str = IN_PLACE) -> Callable[[Any, Any], str]:
    """`change` when the value goes down (or is removed), else `otherwise`."""

    def classify(old: Any, new: Any) -> str:
        if old and (not new or new < old):
            return change
        return otherwise

    return classify


def turned_off(change: str) -> Callable[[Any, Any], str]:
    """`change` when a switch goes from on to off (or is removed)."""
    return lambda old, new: change if old and not new else IN_PLACE


def _major(version: Any) -> int:
    return int(str(version).rsplit("_", 1)[-1]) if version else 0


def _postgres(old: Any, new: Any) -> str:
    return REPLACEMENT if _major(new) < _major(old) else RESTART


RULES: dict[tuple[str, str], Rule] = {
    ("subscription", "filter"): Rule(always(REPLACEMENT), f"a filter is immutable: {MIGRATE}"),
    ("subscription", "enable_message_ordering"): Rule(
        always(REPLACEMENT), f"message ordering is immutable: {MIGRATE}"
    ),
    ("subscription", "message_retention"): Rule(
        lower_is(DATA_LOSS), "lower retention expires the older retained messages at once"
    ),
    ("subscription", "max_delivery_attempts"): Rule(
        lower_is(RESTART), "fewer attempts dead-letter messages that would have been retried"
    ),
    ("topic", "message_retention"): Rule(
        lower_is(DATA_LOSS), "lower retention drops the older retained messages (no replay)"
    ),
    ("dead_letter_subscription", "message_retention"): Rule(
        lower_is(DATA_LOSS), "lower retention expires the older dead letters at once"
    ),
    ("database", "region"): Rule(always(REPLACEMENT), NEW_INSTANCE),
    ("database", "database_version"): Rule(
        _postgres, "a major upgrade has downtime; a downgrade is impossible (a new instance)"
    ),
    ("database", "tier"): Rule(always(RESTART), "a tier change restarts the instance"),
    ("database", "edition"): Rule(always(RESTART), "an edition change restarts the instance"),
    ("database", "availability_type"): Rule(
        always(RESTART), "an availability change restarts the instance"
    ),
    ("database", "private_network"): Rule(
        always(RESTART), "moving the private IP restarts the instance and its clients' paths"
    ),
    ("database", "retained_backups"): Rule(
        lower_is(DATA_LOSS), "fewer retained backups deletes the oldest ones"
    ),
    ("database", "transaction_log_retention_days"): Rule(
        lower_is(DATA_LOSS), "shorter log retention shortens point-in-time recovery at once"
    ),
    ("database", "database"): Rule(
        always(REPLACEMENT), "a new, empty database: the outbox's rows stay in the old one"
    ),
    ("subscription", "expiration_ttl"): Rule(
        lower_is(DATA_LOSS),
        "a subscription that expires is deleted, backlog and all, after that long unused",
    ),
    ("database", "backups_enabled"): Rule(
        turned_off(DATA_LOSS), "without automated backups a lost instance cannot be restored"
    ),
    ("database", "point_in_time_recovery"): Rule(
        turned_off(DATA_LOSS), "turning PITR off drops the recovery logs and the PITR window"
    ),
    ("alert_policy", "enabled"): Rule(
        turned_off(BLINDS), "a disabled alert policy pages nobody (the DLQ backlog alert too)"
    ),
    ("database", "logical_decoding"): Rule(
        always(RESTART),
        "database flags (cloudsql.logical_decoding among them) apply with an instance restart",
    ),
}
"""(kind, setting) -> what changing it does. Kinds: topic, dead_letter_topic,
dead_letter_subscription, subscription, database, alert_policy. A setting not listed is updated
in place."""

PROGRAM_FIXED = {
    ("subscription", "expiration_ttl"),
    ("database", "backups_enabled"),
    ("database", "point_in_time_recovery"),
    ("alert_policy", "enabled"),
}
"""Rules for values the program sets itself (no stack setting carries them): a change to one
comes from a program edit or drift, and only the guard sees it, in the preview."""

RENAMES = {
    "topic": f"a topic's name is immutable: a new topic ({REPLACEMENT})",
    "dead_letter_topic": "a new dead-letter topic: letters in the old one stay there",
    "dead_letter_subscription": "a new, empty dead-letter subscription",
    "subscription": f"a new, empty subscription: {MIGRATE}",
    "database": NEW_INSTANCE,
}
"""What renaming (or replacing) each kind means: identity is the name."""


def classify(kind: str, setting: str, old: Any, new: Any) -> tuple[str, str]:
    """(class, why) for one setting going from `old` to `new`."""
    rule = RULES.get((kind, setting))
    if rule is None:
        return IN_PLACE, ""
    change = rule.classify(old, new)
    return change, rule.why if change != IN_PLACE else ""


def duration_seconds(value: Any) -> float | None:
    """A provider duration ("604800s", "0.5s") in seconds; None when unset."""
    if value in (None, ""):
        return None
    return float(str(value).rstrip("s"))


def number(value: Any) -> float | None:
    return None if value in (None, "") else float(value)


def expiry_seconds(value: Any) -> float | None:
    """An expiration policy's ttl: "" means never (infinite); unset means GCP's 31 days."""
    if value is None:
        return None
    return float("inf") if value == "" else duration_seconds(value)


def text(value: Any) -> Any:
    return value


ALERT_POLICY_TYPE = "gcp:monitoring/alertPolicy:AlertPolicy"


@dataclass(frozen=True)
class Property:
    """A provider input that one stack setting becomes, and how to read its value."""

    kind: str
    setting: str
    value: Callable[[Any], Any] = text
    default: Any = None
    """What GCP applies when the input is unset (while the object holding it is set): an
    unset retention is 7 days, not nothing, so lowering it from unset loses data too."""


PROPERTIES: dict[str, dict[str, Property]] = {
    names.SUBSCRIPTION_TYPE: {
        "filter": Property("subscription", "filter"),
        "enableMessageOrdering": Property("subscription", "enable_message_ordering"),
        "messageRetentionDuration": Property(
            "subscription", "message_retention", duration_seconds, default=7 * 86400.0
        ),
        "deadLetterPolicy.maxDeliveryAttempts": Property(
            "subscription", "max_delivery_attempts", number, default=5.0
        ),
        "expirationPolicy.ttl": Property(
            "subscription", "expiration_ttl", expiry_seconds, default=31 * 86400.0
        ),
    },
    names.TOPIC_TYPE: {
        "messageRetentionDuration": Property("topic", "message_retention", duration_seconds),
    },
    names.SQL_INSTANCE_TYPE: {
        "region": Property("database", "region"),
        "databaseVersion": Property("database", "database_version"),
        "settings.tier": Property("database", "tier"),
        "settings.edition": Property("database", "edition"),
        "settings.availabilityType": Property("database", "availability_type"),
        "settings.ipConfiguration.privateNetwork": Property("database", "private_network"),
        "settings.databaseFlags": Property("database", "logical_decoding"),
        "settings.backupConfiguration.backupRetentionSettings.retainedBackups": Property(
            "database", "retained_backups", number, default=7.0
        ),
        "settings.backupConfiguration.transactionLogRetentionDays": Property(
            "database", "transaction_log_retention_days", number, default=7.0
        ),
        "settings.backupConfiguration.enabled": Property("database", "backups_enabled"),
        "settings.backupConfiguration.pointInTimeRecoveryEnabled": Property(
            "database", "point_in_time_recovery"
        ),
    },
    names.SQL_DATABASE_TYPE: {"name": Property("database", "database")},
    ALERT_POLICY_TYPE: {"enabled": Property("alert_policy", "enabled", default=True)},
}
"""Pulumi type -> provider input path (pulumi_gcp's camelCase inputs, nested objects joined by
dots) -> the stack setting it carries, for the settings RULES classes."""
