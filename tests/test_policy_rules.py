"""Each policy-pack rule on resource inputs that pass and that fail, and every committed stack
checked against all rules (the program must comply with the pack CI enforces)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from events_infra.components.offline import run_program, stack_config
from policy import rules

STACKS = Path(__file__).resolve().parent.parent / "stacks"
DLQ_TOPIC = "projects/p/topics/events-dlq"


def sub(**overrides: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "name": "orders",
        "project": "p",
        "topic": "projects/p/topics/events",
        "deadLetterPolicy": {"deadLetterTopic": DLQ_TOPIC, "maxDeliveryAttempts": 5},
        "retryPolicy": {"minimumBackoff": "10s", "maximumBackoff": "600s"},
        "labels": {},
    }
    props.update(overrides)
    return props


# --- subscription-dead-letter-policy ------------------------------------------------------------


def test_dead_letter_policy_passes() -> None:
    assert rules.subscription_dead_letter_policy(rules.SUBSCRIPTION, sub()) == []


@pytest.mark.parametrize(
    ("props", "message"),
    [
        (sub(deadLetterPolicy=None), "has no dead-letter policy"),
        (sub(deadLetterPolicy={"deadLetterTopic": DLQ_TOPIC, "maxDeliveryAttempts": 4}),
         "maxDeliveryAttempts 4 is outside 5–100"),
        (sub(deadLetterPolicy={"deadLetterTopic": DLQ_TOPIC, "maxDeliveryAttempts": 101}),
         "maxDeliveryAttempts 101 is outside 5–100"),
        (sub(deadLetterPolicy={"deadLetterTopic": DLQ_TOPIC, "maxDeliveryAttempts": 10}),
         "differs from the default 5 without an explicit override"),
    ],
)  # fmt: skip
def test_dead_letter_policy_fails(props: dict[str, Any], message: str) -> None:
    [violation] = rules.subscription_dead_letter_policy(rules.SUBSCRIPTION, props)
    assert message in violation


def test_explicit_attempt_override_passes() -> None:
    props = sub(
        deadLetterPolicy={"deadLetterTopic": DLQ_TOPIC, "maxDeliveryAttempts": 10},
        labels={rules.ATTEMPTS_OVERRIDE_LABEL: "true"},
    )
    assert rules.subscription_dead_letter_policy(rules.SUBSCRIPTION, props) == []


def test_dead_letter_subscriptions_and_other_types_are_exempt() -> None:
    dlq = sub(deadLetterPolicy=None, retryPolicy=None, labels={rules.ROLE_LABEL: "dead-letter"})
    assert rules.subscription_dead_letter_policy(rules.SUBSCRIPTION, dlq) == []
    assert rules.subscription_retry_policy(rules.SUBSCRIPTION, dlq) == []
    assert rules.subscription_dead_letter_policy(rules.TOPIC, {"name": "events"}) == []


# --- subscription-retry-policy ------------------------------------------------------------------


def test_retry_policy_passes() -> None:
    assert rules.subscription_retry_policy(rules.SUBSCRIPTION, sub()) == []


@pytest.mark.parametrize(
    ("retry", "message"),
    [
        (None, "has no retry policy"),
        ({"minimumBackoff": "5s", "maximumBackoff": "600s"}, "5s–600s is outside 10–600 s"),
        ({"minimumBackoff": "10s", "maximumBackoff": "700s"}, "10s–700s is outside"),
        ({"minimumBackoff": "300s", "maximumBackoff": "60s"}, "minimum > maximum"),
    ],
)
def test_retry_policy_fails(retry: dict[str, str] | None, message: str) -> None:
    [violation] = rules.subscription_retry_policy(rules.SUBSCRIPTION, sub(retryPolicy=retry))
    assert message in violation


# --- cloudsql-backups-and-protection ------------------------------------------------------------


def instance(
    deletion: bool = True, backups: bool = True, pitr: bool = True, kept: int = 7, days: int = 7
) -> dict[str, Any]:
    return {
        "name": "outbox",
        "deletionProtection": deletion,
        "settings": {
            "deletionProtectionEnabled": deletion,
            "backupConfiguration": {
                "enabled": backups,
                "pointInTimeRecoveryEnabled": pitr,
                "backupRetentionSettings": {"retainedBackups": kept},
                "transactionLogRetentionDays": days,
            },
        },
    }


def test_cloudsql_passes() -> None:
    assert (
        rules.cloudsql_backups_and_protection(rules.SQL_INSTANCE, instance(), {"production": True})
        == []
    )
    # outside production, deletion protection is not required
    assert rules.cloudsql_backups_and_protection(rules.SQL_INSTANCE, instance(deletion=False)) == []


@pytest.mark.parametrize(
    ("props", "config", "message"),
    [
        (instance(backups=False), {}, "automated backups are off"),
        (instance(pitr=False), {}, "point-in-time recovery is off"),
        (instance(deletion=False), {"production": True}, "production needs deletionProtection"),
        (instance(kept=3), {"minRetainedBackups": 7}, "keeps 3 backups; this stack's floor is 7"),
        (instance(days=2), {"minLogRetentionDays": 7}, "covers 2 days; this stack's floor is 7"),
    ],
)
def test_cloudsql_fails(props: dict[str, Any], config: dict[str, Any], message: str) -> None:
    [violation] = rules.cloudsql_backups_and_protection(rules.SQL_INSTANCE, props, config)
    assert message in violation


# --- dead-letter-retention -----------------------------------------------------------------------


def dead_letter_sub(retention: str | None) -> dict[str, Any]:
    props = sub(name="events-dlq-sub", labels={"events-infra-role": "dead-letter"})
    if retention is not None:
        props["messageRetentionDuration"] = retention
    return props


@pytest.mark.parametrize(
    ("retention", "floor", "fails"),
    [("86400s", 604800, True), ("604800s", 604800, False), ("1209600s", 604800, False),
     (None, 604800, False), ("3600s", 86400, True)],
)  # fmt: skip
def test_dead_letter_retention_floor(retention: str | None, floor: float, fails: bool) -> None:
    found = rules.dead_letter_retention(
        rules.SUBSCRIPTION, dead_letter_sub(retention), {"minRetentionSeconds": floor}
    )
    assert bool(found) is fails
    assert (
        rules.dead_letter_retention(rules.SUBSCRIPTION, sub(), {"minRetentionSeconds": 1e9}) == []
    )


# --- no-broad-project-iam -----------------------------------------------------------------------


@pytest.mark.parametrize("role", ["roles/owner", "roles/editor", "roles/pubsub.admin"])
def test_broad_project_roles_fail(role: str) -> None:
    member = {"project": "p", "role": role, "member": "user:a@b.c"}
    [violation] = rules.no_broad_project_iam("gcp:projects/iAMMember:IAMMember", member)
    assert f"project-wide {role}" in violation
    policy = {"project": "p", "policyData": json.dumps({"bindings": [{"role": role}]})}
    assert rules.no_broad_project_iam("gcp:projects/iAMPolicy:IAMPolicy", policy)


def test_narrow_project_roles_pass() -> None:
    member = {"project": "p", "role": "roles/monitoring.viewer", "member": "user:a@b.c"}
    assert rules.no_broad_project_iam("gcp:projects/iAMMember:IAMMember", member) == []
    topic_admin = {"role": "roles/pubsub.admin", "topic": "t"}  # not project-wide
    assert rules.no_broad_project_iam("gcp:pubsub/topicIAMMember:TopicIAMMember", topic_admin) == []


# --- stack rules --------------------------------------------------------------------------------


def dlq_topic() -> tuple[str, dict[str, Any]]:
    return rules.TOPIC, {"name": "events-dlq", "project": "p", "labels": {}}


def dlq_sub() -> tuple[str, dict[str, Any]]:
    return rules.SUBSCRIPTION, sub(name="events-dlq-sub", topic=DLQ_TOPIC,
                                   deadLetterPolicy=None, retryPolicy=None)  # fmt: skip


def alert(subscription: str) -> tuple[str, dict[str, Any]]:
    metric = "pubsub.googleapis.com/subscription/num_undelivered_messages"
    flt = f'resource.labels.subscription_id = "{subscription}" AND metric.type = "{metric}"'
    return rules.ALERT_POLICY, {"conditions": [{"conditionThreshold": {"filter": flt}}]}


def test_dead_letter_topic_without_subscription_fails() -> None:
    stack = [(rules.SUBSCRIPTION, sub()), dlq_topic()]
    assert rules.dead_letter_topics_have_subscriptions(stack) == [
        "dead-letter topic events-dlq has no subscription"
    ]
    assert rules.dead_letter_topics_have_subscriptions([*stack, dlq_sub()]) == []


def test_dead_letter_subscription_without_alert_fails() -> None:
    stack = [(rules.SUBSCRIPTION, sub()), dlq_topic(), dlq_sub()]
    assert rules.dead_letter_subscriptions_alerted(stack) == [
        "dead-letter subscription events-dlq-sub is not covered by an alert policy"
    ]
    assert rules.dead_letter_subscriptions_alerted([*stack, alert("other-sub")])  # wrong target
    assert rules.dead_letter_subscriptions_alerted([*stack, alert("events-dlq-sub")]) == []


@pytest.mark.parametrize("path", sorted(STACKS.glob("Pulumi.*.yaml")), ids=lambda p: p.name)
def test_committed_stacks_comply_with_every_rule(path: Path) -> None:
    run = run_program(stack_config(path))
    resources = [(r.type, r.inputs) for r in run.resources]
    production = path.name == "Pulumi.prod.yaml"
    violations = [
        v
        for rule in rules.RESOURCE_RULES.values()
        for t, props in resources
        for v in rule(t, props, {"production": production})
    ]
    violations += [v for rule in rules.STACK_RULES.values() for v in rule(resources)]
    assert violations == []


def test_the_attempts_override_label_comes_only_from_a_stated_reason() -> None:
    """The label used to follow the attempts themselves, so the rule could never fire. Now the
    model asks why, the label follows the answer, and a subscription declared with other
    attempts and no reason (a program bypassing the model) fails the pack."""
    from events_infra.stack_config.resource_labels import subscription_labels
    from events_infra.stack_config.topology import (
        SubscriptionConfig,
        TopologyError,
        parse_topology,
    )

    attempts = {"name": "orders-sub", "max_delivery_attempts": 10}
    with pytest.raises(TopologyError, match="say why in max_delivery_attempts_reason"):
        parse_topology({"subscriptions": [attempts]}, "cotton-erp")
    stated = parse_topology(
        {"subscriptions": [{**attempts, "max_delivery_attempts_reason": "slow partner API"}]},
        "cotton-erp",
    ).subscriptions[0]
    assert subscription_labels({}, stated) == {rules.ATTEMPTS_OVERRIDE_LABEL: "true"}
    policy = {"deadLetterTopic": DLQ_TOPIC, "maxDeliveryAttempts": 10}
    passes = sub(deadLetterPolicy=policy, labels=subscription_labels({}, stated))
    assert rules.subscription_dead_letter_policy(rules.SUBSCRIPTION, passes) == []
    unstated = SubscriptionConfig.model_construct(name="orders-sub", max_delivery_attempts=10)
    assert subscription_labels({}, unstated) == {}
    fails = sub(deadLetterPolicy=policy, labels=subscription_labels({}, unstated))
    [violation] = rules.subscription_dead_letter_policy(rules.SUBSCRIPTION, fails)
    assert "without an explicit override" in violation
