"""The policy pack's rules as plain functions over resource properties (camelCase, as the engine
passes them), so they are unit-tested without the policy runtime.

Resource rules take `(resource_type, props, config)` and return violation messages; stack rules
take the list of `(resource_type, props)` of the whole stack.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

SUBSCRIPTION = "gcp:pubsub/subscription:Subscription"
TOPIC = "gcp:pubsub/topic:Topic"
ALERT_POLICY = "gcp:monitoring/alertPolicy:AlertPolicy"
SQL_INSTANCE = "gcp:sql/databaseInstance:DatabaseInstance"
PROJECT_IAM = (
    "gcp:projects/iAMMember:IAMMember",
    "gcp:projects/iAMBinding:IAMBinding",
    "gcp:projects/iAMPolicy:IAMPolicy",
)
ROLE_LABEL = "events-infra-role"
DEAD_LETTER_ROLE = "dead-letter"
ATTEMPTS_OVERRIDE_LABEL = "max-delivery-attempts-override"
BROAD_ROLES = frozenset({"roles/owner", "roles/editor", "roles/pubsub.admin"})
# Fallbacks when a stack's policy config omits a value; events_infra.stack_config.limits is the
# source (policy/config.<stack>.json is written from it) and tests/test_limits.py keeps these equal.
DEFAULT_ATTEMPTS = 5
MIN_ATTEMPTS, MAX_ATTEMPTS = 5, 100
MIN_BACKOFF_S, MAX_BACKOFF_S = 10.0, 600.0

Resource = tuple[str, Mapping[str, Any]]


def _seconds(value: Any) -> float | None:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)s", str(value or ""))
    return float(match.group(1)) if match else None


def _is_dead_letter(props: Mapping[str, Any]) -> bool:
    return (props.get("labels") or {}).get(ROLE_LABEL) == DEAD_LETTER_ROLE


def subscription_dead_letter_policy(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any] | None = None
) -> list[str]:
    """Every subscription but a dead-letter one dead-letters after 5–100 attempts, and after the
    configured default (5) unless its stack explicitly overrides it (label set by EventBus)."""
    if resource_type != SUBSCRIPTION or _is_dead_letter(props):
        return []
    name = props.get("name", "?")
    policy = props.get("deadLetterPolicy") or {}
    if not policy.get("deadLetterTopic"):
        return [f"subscription {name} has no dead-letter policy: failed messages retry forever"]
    config = config or {}
    low = int(config.get("minDeliveryAttempts", MIN_ATTEMPTS))
    high = int(config.get("maxDeliveryAttempts", MAX_ATTEMPTS))
    attempts = policy.get("maxDeliveryAttempts")
    if attempts is None or not low <= int(attempts) <= high:
        return [f"subscription {name}: maxDeliveryAttempts {attempts} is outside {low}–{high}"]
    default = int(config.get("defaultMaxDeliveryAttempts", DEFAULT_ATTEMPTS))
    overridden = (props.get("labels") or {}).get(ATTEMPTS_OVERRIDE_LABEL) == "true"
    if int(attempts) != default and not overridden:
        return [
            f"subscription {name}: maxDeliveryAttempts {attempts} differs from the default "
            f"{default} without an explicit override in the stack config"
        ]
    return []


def subscription_retry_policy(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any] | None = None
) -> list[str]:
    """Every subscription but a dead-letter one retries with a backoff within 10–600 s."""
    if resource_type != SUBSCRIPTION or _is_dead_letter(props):
        return []
    config = config or {}
    floor = float(config.get("minBackoffSeconds", MIN_BACKOFF_S))
    ceiling = float(config.get("maxBackoffSeconds", MAX_BACKOFF_S))
    name = props.get("name", "?")
    retry = props.get("retryPolicy") or {}
    low, high = _seconds(retry.get("minimumBackoff")), _seconds(retry.get("maximumBackoff"))
    if low is None or high is None:
        return [f"subscription {name} has no retry policy with minimum and maximum backoff"]
    if not (floor <= low <= high <= ceiling):
        return [
            f"subscription {name}: retry backoff {low:g}s–{high:g}s is outside "
            f"{floor:g}–{ceiling:g} s (or minimum > maximum)"
        ]
    return []


def cloudsql_backups_and_protection(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any] | None = None
) -> list[str]:
    """Cloud SQL: backups with point-in-time recovery always; deletion protection (Pulumi's
    and the API's) on production stacks (policy config `production: true`)."""
    if resource_type != SQL_INSTANCE:
        return []
    name = props.get("name", "?")
    settings = props.get("settings") or {}
    backup = settings.get("backupConfiguration") or {}
    problems = []
    if not backup.get("enabled"):
        problems.append(f"Cloud SQL instance {name}: automated backups are off")
    if not backup.get("pointInTimeRecoveryEnabled"):
        problems.append(f"Cloud SQL instance {name}: point-in-time recovery is off")
    retention = backup.get("backupRetentionSettings") or {}
    floor = int((config or {}).get("minRetainedBackups", 1))
    if int(retention.get("retainedBackups") or 0) < floor:
        problems.append(
            f"Cloud SQL instance {name}: keeps {retention.get('retainedBackups')} backups; "
            f"this stack's floor is {floor}"
        )
    days_floor = int((config or {}).get("minLogRetentionDays", 1))
    if int(backup.get("transactionLogRetentionDays") or 0) < days_floor:
        problems.append(
            f"Cloud SQL instance {name}: point-in-time recovery covers "
            f"{backup.get('transactionLogRetentionDays')} days; this stack's floor is {days_floor}"
        )
    if (config or {}).get("production") and not (
        props.get("deletionProtection") and settings.get("deletionProtectionEnabled")
    ):
        problems.append(
            f"Cloud SQL instance {name}: production needs deletionProtection and "
            "settings.deletionProtectionEnabled"
        )
    return problems


def dead_letter_retention(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any] | None = None
) -> list[str]:
    """A dead-letter subscription keeps its letters at least the stack's floor (a week on
    production): on-call replays from it, and a lower retention expires letters at once."""
    if resource_type != SUBSCRIPTION or not _is_dead_letter(props):
        return []
    floor = float((config or {}).get("minRetentionSeconds", 86400))
    have = _seconds(props.get("messageRetentionDuration")) or 7 * 86400.0  # the API's default
    if have < floor:
        return [
            f"dead-letter subscription {props.get('name', '?')} keeps letters {have:g}s; this "
            f"stack's floor is {floor:g}s"
        ]
    return []


def no_broad_project_iam(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any] | None = None
) -> list[str]:
    """No project-wide owner, editor or pubsub.admin grant, in any IAM resource form."""
    if resource_type not in PROJECT_IAM:
        return []
    if resource_type.endswith("IAMPolicy"):
        data = props.get("policyData") or "{}"
        bindings = (json.loads(data) if isinstance(data, str) else data).get("bindings", [])
        roles = [b.get("role") for b in bindings]
    else:
        roles = [props.get("role")]
    return [
        f"project-wide {role} on {props.get('project', 'the project')}: grant a narrower role "
        "on the single resource instead"
        for role in roles
        if role in BROAD_ROLES
    ]


RESOURCE_RULES = {
    "subscription-dead-letter-policy": subscription_dead_letter_policy,
    "subscription-retry-policy": subscription_retry_policy,
    "cloudsql-backups-and-protection": cloudsql_backups_and_protection,
    "dead-letter-retention": dead_letter_retention,
    "no-broad-project-iam": no_broad_project_iam,
}


def _topic_refs(props: Mapping[str, Any]) -> set[str]:
    """A topic by every name it can be referenced by: id (projects/P/topics/T) and name."""
    refs = {str(props.get("name", ""))}
    if props.get("id"):
        refs.add(str(props["id"]))
    if props.get("project") and props.get("name"):
        refs.add(f"projects/{props['project']}/topics/{props['name']}")
    return refs - {""}


def dead_letter_topics_have_subscriptions(resources: Iterable[Resource]) -> list[str]:
    """A topic with no subscription drops what is published to it: every dead-letter topic
    needs one."""
    resources = list(resources)
    subscriptions = [p for t, p in resources if t == SUBSCRIPTION]
    targets = {(s.get("deadLetterPolicy") or {}).get("deadLetterTopic") for s in subscriptions} - {
        None
    }
    attached = {s.get("topic") for s in subscriptions}
    problems = []
    for resource_type, props in resources:
        if resource_type != TOPIC:
            continue
        refs = _topic_refs(props)
        if (refs & targets or _is_dead_letter(props)) and not refs & attached:
            problems.append(f"dead-letter topic {props.get('name')} has no subscription")
    return problems


def dead_letter_subscriptions_alerted(resources: Iterable[Resource]) -> list[str]:
    """Every dead-letter subscription is watched by an alert on its undelivered messages."""
    resources = list(resources)
    dead_letter_topics = {
        ref for t, p in resources if t == TOPIC and _is_dead_letter(p) for ref in _topic_refs(p)
    }
    dead_letter_topics |= {
        (p.get("deadLetterPolicy") or {}).get("deadLetterTopic")
        for t, p in resources
        if t == SUBSCRIPTION
    } - {None}
    filters = [
        (c.get("conditionThreshold") or {}).get("filter", "")
        for t, p in resources
        if t == ALERT_POLICY
        for c in p.get("conditions") or []
    ]
    problems = []
    for resource_type, props in resources:
        if resource_type != SUBSCRIPTION or props.get("topic") not in dead_letter_topics:
            continue
        name = props.get("name")
        watched = any(
            f'subscription_id = "{name}"' in f and "num_undelivered_messages" in f for f in filters
        )
        if not watched:
            problems.append(f"dead-letter subscription {name} is not covered by an alert policy")
    return problems


STACK_RULES = {
    "dead-letter-topic-has-subscription": dead_letter_topics_have_subscriptions,
    "dead-letter-subscription-alerted": dead_letter_subscriptions_alerted,
}
