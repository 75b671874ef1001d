"""The alert policies a stack declares, Pulumi-free: their display names and the conditions
(metric filter, threshold, duration) each one pages on.

One home for these facts: the alerting component (components/alerting.py) builds each
`gcp.monitoring.AlertPolicy` from them, and `eventsctl dlq doctor` finds each policy in Cloud
Monitoring by its display name and checks it against them, so a policy edited or deleted in the
console is named. Only conditions whose filter comes from Pub/Sub's or the relay's metrics are
listed here; the dead-letter rate policy's second condition (the consumer library's log-based
count) is the component's alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from events_infra.outbox.metric_names import BACKLOG as OUTBOX_BACKLOG
from events_infra.outbox.metric_names import OLDEST_UNPUBLISHED_AGE, relay_filter
from events_infra.pubsub.metrics import (
    DEAD_LETTERED,
    OLDEST_UNACKED,
    UNDELIVERED,
    subscription_filter,
)
from events_infra.stack_config.alerting_config import AlertingConfig
from events_infra.stack_config.durations import human_duration
from events_infra.stack_config.outbox_config import OutboxConfig, relay_service_of
from events_infra.stack_config.topology import DeadLetterConfig, StackConfig, SubscriptionConfig


@dataclass(frozen=True)
class DeclaredCondition:
    display_name: str
    filter: str
    threshold: float | None
    """None: an absence condition (fires when the metric stops arriving)."""
    duration: float
    """Seconds the condition must hold (or the metric be absent) before it fires."""
    alignment_period: float | None = None
    """Seconds each series is aligned over (threshold conditions; `COMPARISON_GT` always): a
    longer period silently delays every page."""


@dataclass(frozen=True)
class DeclaredPolicy:
    key: str
    """The policy's part of its Pulumi resource name (`<alerting>-<key>`)."""
    display_name: str
    conditions: tuple[DeclaredCondition, ...]


def declared_alert_policies(
    stack: str,
    project: str,
    alerting: AlertingConfig,
    dead_letter: DeadLetterConfig,
    subscriptions: Sequence[SubscriptionConfig],
    relay_deployed: bool,
    outboxes: Sequence[OutboxConfig] = (),
) -> list[DeclaredPolicy]:
    """Every alert policy the stack `stack` declares, in the order the component creates them."""
    dlq_sub = dead_letter.subscription
    backlog = alerting.dlq_backlog
    policies = [
        DeclaredPolicy(
            "dlq-backlog",
            f"[{stack}] dead letters above {backlog.threshold:g} in {dlq_sub}",
            (
                DeclaredCondition(
                    f"{dlq_sub} undelivered messages > {backlog.threshold:g}",
                    subscription_filter(project, dlq_sub, UNDELIVERED),
                    backlog.threshold,
                    backlog.duration,
                    backlog.alignment_period,
                ),
            ),
        )
    ]
    for sub in subscriptions:
        rate = alerting.dead_letter_rate
        if rate is not None:
            per = human_duration(rate.alignment_period)
            policies.append(
                DeclaredPolicy(
                    f"dead-letter-rate-{sub.name}",
                    f"[{stack}] {sub.name} is dead-lettering messages",
                    (
                        DeclaredCondition(
                            f"{sub.name} dead-lettered > {rate.threshold:g} per {per}",
                            subscription_filter(project, sub.name, DEAD_LETTERED),
                            rate.threshold,
                            rate.duration,
                            rate.alignment_period,
                        ),
                    ),
                )
            )
        age = alerting.oldest_unacked
        if age is not None:
            policies.append(
                DeclaredPolicy(
                    f"oldest-unacked-{sub.name}",
                    f"[{stack}] {sub.name} consumer is stuck",
                    (
                        DeclaredCondition(
                            f"{sub.name} oldest unacked message older than "
                            f"{human_duration(age.threshold)}",
                            subscription_filter(project, sub.name, OLDEST_UNACKED),
                            age.threshold,
                            age.duration,
                            age.alignment_period,
                        ),
                    ),
                )
            )
    keep = alerting.dlq_retention
    if keep is not None:
        limit = round(dead_letter.message_retention * keep.fraction)
        policies.append(
            DeclaredPolicy(
                "dlq-retention",
                f"[{stack}] dead letters in {dlq_sub} are about to expire",
                (
                    DeclaredCondition(
                        f"{dlq_sub} oldest message older than {human_duration(limit)} "
                        f"(retention {human_duration(dead_letter.message_retention)})",
                        subscription_filter(project, dlq_sub, OLDEST_UNACKED),
                        limit,
                        0,
                        keep.alignment_period,
                    ),
                ),
            )
        )
    stuck = alerting.stuck_outbox
    if relay_deployed and stuck is not None:
        for outbox in (None, *outboxes):  # the first outbox (`database`), then `outboxes`
            job = relay_service_of(outbox)
            suffix = f"-{outbox.name}" if outbox is not None else ""
            of = f" of {outbox.name}" if outbox is not None else ""
            policies += [
                DeclaredPolicy(
                    f"stuck-outbox{suffix}",
                    f"[{stack}] events stuck in the outbox{of}",
                    (
                        DeclaredCondition(
                            "oldest unpublished event older than "
                            f"{human_duration(stuck.threshold)}",
                            relay_filter(project, OLDEST_UNPUBLISHED_AGE, job),
                            stuck.threshold,
                            stuck.duration,
                            stuck.alignment_period,
                        ),
                    ),
                ),
                DeclaredPolicy(
                    f"relay-silent{suffix}",
                    f"[{stack}] no outbox relay{of} is reporting",
                    (
                        DeclaredCondition(
                            f"relay metrics absent for {human_duration(stuck.silent_after)}",
                            relay_filter(project, OUTBOX_BACKLOG, job),
                            None,
                            stuck.silent_after,
                        ),
                    ),
                ),
            ]
    return policies


def stack_alert_policies(stack: str, topology: StackConfig) -> list[DeclaredPolicy]:
    """`declared_alert_policies` for a loaded stack file."""
    return declared_alert_policies(
        stack, topology.project, topology.alerting, topology.dead_letter,
        topology.subscriptions, topology.relay is not None, topology.outboxes,
    )  # fmt: skip
