"""`eventsctl dlq doctor` on the emulator: a healthy stack passes; each broken state, created
for real, is reported by name with exit 1."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from events_infra.cli.app import app
from tests.support.dlq_support import DlqStack, make_stack

runner = CliRunner()


def doctor(stack: DlqStack) -> tuple[int, list[dict[str, Any]]]:
    out = runner.invoke(app, ["dlq", "doctor", *stack.cli_args(), "--json"])
    assert out.exit_code in (0, 1), out.output
    return out.exit_code, json.loads(out.stdout)


def failures(rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(r["check"], r["resource"].rsplit("/", 1)[-1]) for r in rows if r["ok"] is False}


def recreate(stack: DlqStack, name: str, **request: Any) -> None:
    """Delete and create `name` again from `request` (the emulator's way to change what
    cannot be updated), keeping the labels it was provisioned with unless `request` sets them."""
    path = stack.subscription(name)
    labels = dict(stack.subscriber.get_subscription(subscription=path).labels)
    stack.subscriber.delete_subscription(subscription=path)
    stack.subscriber.create_subscription(request={"name": path, "labels": labels, **request})


SUBSCRIPTION_CHECKS = {
    "subscription-topic", "replay-filter", "message-ordering", "dead-letter-policy",
    "retry-backoff", "ack-deadline", "exactly-once", "push-config", "retain-acked",
    "message-retention", "subscription-never-expires", "labels",
}  # fmt: skip
"""Every field the program sets on a consumer subscription, one check each."""


def test_healthy_stack_passes(pubsub: str, tmp_path: Path) -> None:
    stack = make_stack(tmp_path, shorten_backoff=False)
    code, rows = doctor(stack)
    assert failures(rows) == set()
    assert code == 0
    checks: dict[str, set[str]] = {}
    for r in rows:
        checks.setdefault(r["resource"].rsplit("/", 1)[-1], set()).add(r["check"])
    for name in ("orders-sub", "billing-sub", "audit-sub"):
        assert checks[name] == SUBSCRIPTION_CHECKS
    assert {"dead-letter-retention", "subscription-never-expires", "dead-letter-policy",
            "labels"} <= checks["events-dlq-sub"]  # fmt: skip
    assert checks["events"] == {"topic-retention", "kms-key", "labels"}
    assert {"dead-letter-topic-has-subscription", "kms-key", "labels"} <= checks["events-dlq"]
    # no Cloud Monitoring on the emulator: the alert policies are "not checked", not failed
    [alerts] = [r for r in rows if r["check"] == "alert-policies"]
    assert alerts["ok"] is None and "EVENTSCTL_MONITORING_ENDPOINT" in alerts["detail"]


RETRY = {"minimum_backoff": {"seconds": 10}, "maximum_backoff": {"seconds": 600}}
"""The stack file's backoff (the model's default, 10–600 s): breakages keep it unless testing it."""


SLOW_RETRY = {"minimum_backoff": {"seconds": 1}, "maximum_backoff": {"seconds": 2}}


def _dead_letter_policy(stack: DlqStack, attempts: int = 5) -> dict[str, Any]:
    return {"dead_letter_topic": stack.dlq_topic, "max_delivery_attempts": attempts}


def _no_dead_letter_policy(stack: DlqStack) -> None:
    recreate(stack, "orders-sub", topic=stack.topic, expiration_policy={},
             filter=stack.topology.subscription("orders-sub").delivery_filter,
             retry_policy=RETRY)  # fmt: skip


def _wrong_attempts(stack: DlqStack) -> None:
    sub = stack.topology.subscription("billing-sub")
    recreate(stack, "billing-sub", topic=stack.topic, expiration_policy={},
             filter=sub.delivery_filter,
             dead_letter_policy=_dead_letter_policy(stack, 10),
             retry_policy=RETRY)  # fmt: skip


def _wrong_backoff(stack: DlqStack) -> None:
    sub = stack.topology.subscription("audit-sub")
    recreate(stack, "audit-sub", topic=stack.topic, expiration_policy={},
             filter=sub.delivery_filter,
             dead_letter_policy=_dead_letter_policy(stack),
             retry_policy=SLOW_RETRY)  # fmt: skip


def _dead_letter_topic_without_subscription(stack: DlqStack) -> None:
    stack.subscriber.delete_subscription(subscription=stack.dlq_subscription)


def _expiring_subscription(stack: DlqStack) -> None:
    sub = stack.topology.subscription("orders-sub")
    recreate(stack, "orders-sub", topic=stack.topic, filter=sub.delivery_filter,
             expiration_policy={"ttl": {"seconds": 31 * 86400}},
             dead_letter_policy=_dead_letter_policy(stack), retry_policy=RETRY)  # fmt: skip


def _short_retention(stack: DlqStack) -> None:
    name = stack.topology.dead_letter.subscription
    recreate(stack, name, topic=stack.dlq_topic, expiration_policy={},
             message_retention_duration={"seconds": 3600})  # fmt: skip


def _wrong_filter(stack: DlqStack) -> None:
    recreate(stack, "billing-sub", topic=stack.topic, expiration_policy={},
             dead_letter_policy=_dead_letter_policy(stack), retry_policy=RETRY)  # fmt: skip


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (_no_dead_letter_policy, {("dead-letter-policy", "orders-sub")}),
        (_wrong_attempts, {("dead-letter-policy", "billing-sub")}),
        (_wrong_backoff, {("retry-backoff", "audit-sub")}),
        (
            _dead_letter_topic_without_subscription,
            {
                ("dead-letter-topic-has-subscription", "events-dlq"),
                ("dead-letter-subscription-exists", "events-dlq-sub"),
            },
        ),
        (_expiring_subscription, {("subscription-never-expires", "orders-sub")}),
        (_short_retention, {("dead-letter-retention", "events-dlq-sub")}),
        (_wrong_filter, {("replay-filter", "billing-sub")}),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else "",
)
def test_each_broken_state_is_named(
    pubsub: str,
    tmp_path: Path,
    breakage: Callable[[DlqStack], None],
    expected: set[tuple[str, str]],
) -> None:
    stack = make_stack(tmp_path, shorten_backoff=False)
    breakage(stack)
    code, rows = doctor(stack)
    assert failures(rows) == expected
    assert code == 1


def test_unreadable_iam_policies_are_not_checked_rather_than_failed(
    pubsub: str, tmp_path: Path, strict_proxy: Any
) -> None:
    """The DLQ operator grants let doctor read topics and subscriptions but not IAM policies:
    Pub/Sub answers PERMISSION_DENIED (injected here, as the emulator has no IAM). The IAM checks
    say so; they do not blame the grants with a failure."""
    from events_infra.dlq.clients import publisher_client, subscriber_client
    from events_infra.dlq.doctor import diagnose
    from events_infra.dlq.target import resolve

    stack = make_stack(tmp_path, shorten_backoff=False)
    target = resolve(stack.name, stack.topology, None, None, None)
    strict_proxy.fail("GetIamPolicy", "PERMISSION_DENIED", count=4)
    findings = diagnose(
        publisher_client(), subscriber_client(), target, stack.topology, check_iam=True
    )
    iam = [f for f in findings if f.check.startswith("service-agent-")]
    assert len(iam) == 4 and all(f.ok is None for f in iam)
    assert all("not checked: reading IAM policies needs" in f.detail for f in iam)
    assert [f for f in findings if f.ok is False] == []
