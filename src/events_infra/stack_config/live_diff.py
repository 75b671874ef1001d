"""A live Pub/Sub topic or subscription against the stack model, field by field, in one place.

`eventsctl adopt plan` (before the first `up`: what importing would change) and `eventsctl dlq
doctor` (after it: what drifted since, e.g. a console edit Pulumi cannot see without a refresh)
both compare with these functions, so they cannot disagree on what the stack declares. Each
difference is classed with `change_classes`' facts: applied in place, in place but losing data,
or a migration (GCP cannot change a subscription's topic, filter or ordering; the provider would
replace it and drop its backlog).

Pulumi-free: what the program declares is read from the model (`EventBus` sets the same values,
labels from `resource_labels`). Live resources are the Pub/Sub API's proto-plus messages.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from events_infra.pubsub.paths import subscription_path
from events_infra.stack_config import change_classes
from events_infra.stack_config.durations import human_duration
from events_infra.stack_config.resource_labels import (
    dead_letter_labels,
    subscription_labels,
    topic_labels,
)
from events_infra.stack_config.topology import StackConfig, SubscriptionConfig

IN_PLACE = "in place"
DISRUPTIVE = "in place, loses data"
"""Applied in place, but it drops data: a lower retention expires older messages at once."""
MIGRATION = "migration"
RESTARTS = "in place, restarts"
"""Applied in place, with downtime: a Cloud SQL tier, edition or availability change."""

TOPIC_FIELDS = ("message_retention", "kms_key_name", "labels")
"""What `topic_diff` compares (each a setting the program declares on a topic)."""
SUBSCRIPTION_FIELDS = (
    "topic", "filter", "enable_message_ordering", "dead_letter_policy", "retry_policy",
    "ack_deadline", "enable_exactly_once_delivery", "push_endpoint", "retain_acked_messages",
    "message_retention", "expiration", "labels",
)  # fmt: skip
"""What `subscription_diff` compares."""
DEAD_LETTER_SUBSCRIPTION_FIELDS = (
    "topic", "filter", "enable_message_ordering", "dead_letter_policy", "push_endpoint",
    "ack_deadline", "retain_acked_messages", "message_retention", "expiration", "labels",
)  # fmt: skip
"""What `dead_letter_subscription_diff` compares."""


@dataclass(frozen=True)
class Difference:
    field: str
    live: str
    declared: str
    change: str
    """IN_PLACE (the next `up` applies it), DISRUPTIVE (applied in place, losing data) or
    MIGRATION (GCP would replace the resource)."""
    how: str = ""
    """For a migration: the way through that keeps the backlog."""


def declared_subscriptions(topology: StackConfig, dead_letter: bool = False) -> set[str]:
    """Full paths of the subscriptions the stack declares on the events topic (or, with
    `dead_letter`, on the dead-letter topic): any other one there is not the stack's."""
    if dead_letter:
        return {subscription_path(topology.project, topology.dead_letter.subscription)}
    return {subscription_path(topology.project, s.name) for s in topology.subscriptions}


def topic_diff(live: Any, topology: StackConfig, dead_letter: bool = False) -> list[Difference]:
    """The events topic's retention, key and labels, or the dead-letter topic's key and labels
    (EventBus sets no retention on it)."""
    found = []
    wanted = 0.0 if dead_letter else (topology.topic.message_retention or 0.0)
    have = seconds(live.message_retention_duration) if "message_retention_duration" in live else 0
    if wanted != have:
        found.append(
            Difference(
                "message_retention",
                shown_duration(have) if have else "(none)",
                shown_duration(wanted) if wanted else "(none)",
                _retention_change(have, wanted),
            )
        )
    if (topology.topic.kms_key_name or "") != live.kms_key_name:
        found.append(
            Difference(
                "kms_key_name",
                live.kms_key_name or "(none)",
                topology.topic.kms_key_name or "(none)",
                IN_PLACE,
            )
        )
    labels = (
        dead_letter_labels(topology.labels, topology.dead_letter)
        if dead_letter
        else topic_labels(topology.labels, topology.topic)
    )
    return found + _labels_diff(live, labels)


def subscription_diff(
    live: Any, sub: SubscriptionConfig, topic: str, dlq_topic: str, topology: StackConfig
) -> list[Difference]:
    """A consumer subscription (`sub`) as it runs against the model; `topic` and `dlq_topic`
    are the events and dead-letter topics' full paths."""
    found: list[Difference] = []
    new_sub = (
        f"declare a new subscription NEW beside it, deploy, then `eventsctl subscription "
        f"migrate {sub.name} --to NEW`, then retire it (consumers dedupe the overlap by event_id)"
    )
    if live.topic != topic:
        found.append(Difference("topic", live.topic, topic, MIGRATION, new_sub))
    if live.filter != sub.delivery_filter:
        how = new_sub
        if not live.filter and sub.replay_filter:
            how = (
                "set `replay_filter: false` on it (it then receives every replayed copy), or "
                + new_sub
            )
        found.append(
            Difference(
                "filter", live.filter or "(none)", sub.delivery_filter or "(none)", MIGRATION, how
            )
        )
    if live.enable_message_ordering != sub.enable_message_ordering:
        found.append(
            Difference(
                "enable_message_ordering",
                str(live.enable_message_ordering),
                str(sub.enable_message_ordering),
                MIGRATION,
                new_sub,
            )
        )
    found += _delivery_settings_diff(live, sub, dlq_topic)
    if live.ack_deadline_seconds != sub.ack_deadline:
        found.append(
            Difference(
                "ack_deadline", f"{live.ack_deadline_seconds}s", f"{sub.ack_deadline}s", IN_PLACE
            )
        )
    if live.enable_exactly_once_delivery != sub.enable_exactly_once_delivery:
        found.append(
            Difference(
                "enable_exactly_once_delivery",
                str(live.enable_exactly_once_delivery),
                str(sub.enable_exactly_once_delivery),
                IN_PLACE,
            )
        )
    push = live.push_config.push_endpoint if "push_config" in live else ""
    if (push or "") != (sub.push_endpoint or ""):
        found.append(
            Difference("push_endpoint", push or "(pull)", sub.push_endpoint or "(pull)", IN_PLACE)
        )
    found += _retention_expiry_labels(
        live, sub.message_retention, subscription_labels(topology.labels, sub)
    )
    return found


def _delivery_settings_diff(live: Any, sub: SubscriptionConfig, dlq_topic: str) -> list[Difference]:
    """Dead-letter and retry policy: what the audit asks for, applied in place."""
    found = []
    policy = live.dead_letter_policy if "dead_letter_policy" in live else None
    # the API's defaults (google/pubsub_v1/types/pubsub.py): 0 attempts means 5, an unset
    # backoff inside a retry policy means 10 s minimum and 600 s maximum
    have = (
        f"{policy.dead_letter_topic} after {policy.max_delivery_attempts or 5}"
        if policy is not None and policy.dead_letter_topic
        else "(none: failures retry forever)"
    )
    want = f"{dlq_topic} after {sub.max_delivery_attempts}"
    if have != want:
        live_attempts = (policy.max_delivery_attempts or 5) if policy is not None else None
        # back to fewer attempts dead-letters what would still have been retried (the table)
        _, why = change_classes.classify(
            "subscription", "max_delivery_attempts", live_attempts, sub.max_delivery_attempts
        )
        found.append(
            Difference("dead_letter_policy", have, want, IN_PLACE, why if live_attempts else "")
        )
    retry = live.retry_policy if "retry_policy" in live else None
    have = (
        f"{shown_duration(_backoff(retry, 'minimum_backoff', 10.0))}-"
        f"{shown_duration(_backoff(retry, 'maximum_backoff', 600.0))}"
        if retry is not None
        else "(none: immediate redelivery)"
    )
    want = f"{shown_duration(sub.min_backoff)}-{shown_duration(sub.max_backoff)}"
    if have != want:
        found.append(Difference("retry_policy", have, want, IN_PLACE))
    return found


def dead_letter_subscription_diff(
    live: Any, dlq_topic: str, topology: StackConfig
) -> list[Difference]:
    """The dead-letter subscription: on the dead-letter topic, pull, unfiltered, no policy of
    its own, never expiring, retained as the model says."""
    dead_letter = topology.dead_letter
    found = []
    other = "choose another dead_letter.subscription name, or empty and delete this one"
    if live.topic != dlq_topic:
        found.append(Difference("topic", live.topic, dlq_topic, MIGRATION, other))
    if live.filter:
        found.append(Difference("filter", live.filter, "(none)", MIGRATION, other))
    if live.enable_message_ordering:
        found.append(Difference("enable_message_ordering", "True", "False", MIGRATION, other))
    if "dead_letter_policy" in live and live.dead_letter_policy.dead_letter_topic:
        topic = live.dead_letter_policy.dead_letter_topic
        found.append(Difference("dead_letter_policy", topic, "(none)", IN_PLACE))
    if "push_config" in live and live.push_config.push_endpoint:
        endpoint = live.push_config.push_endpoint
        found.append(Difference("push_endpoint", endpoint, "(pull)", IN_PLACE))
    if live.ack_deadline_seconds != dead_letter.ack_deadline:
        found.append(
            Difference(
                "ack_deadline",
                f"{live.ack_deadline_seconds}s",
                f"{dead_letter.ack_deadline}s",
                IN_PLACE,
            )
        )
    found += _retention_expiry_labels(
        live, dead_letter.message_retention, dead_letter_labels(topology.labels, dead_letter)
    )
    return found


def _retention_expiry_labels(
    live: Any, retention: float, labels: dict[str, str]
) -> list[Difference]:
    """What every subscription the program declares shares: acked messages not retained (the
    provider's default; EventBus leaves it), the retention, never expiring, the labels."""
    found = []
    if live.retain_acked_messages:
        found.append(Difference("retain_acked_messages", "True", "False", IN_PLACE))
    have = seconds(live.message_retention_duration)
    if have != retention:
        change = _retention_change(have, retention)
        found.append(
            Difference("message_retention", shown_duration(have), shown_duration(retention), change)
        )
    ttl = live.expiration_policy.ttl if "expiration_policy" in live else None
    expires = seconds(ttl) if ttl else 0
    if "expiration_policy" not in live or expires:
        found.append(
            Difference(
                "expiration",
                f"after {shown_duration(expires or 31 * 86400)} idle",
                "never",
                IN_PLACE,
            )
        )
    return found + _labels_diff(live, labels)


def _labels_diff(live: Any, labels: dict[str, str]) -> list[Difference]:
    """Labels the resource lacks or holds with another value (the stack's, its own, and those
    EventBus adds: stack_config.resource_labels); labels only others set are left alone."""
    missing = {k: v for k, v in labels.items() if live.labels.get(k) != v}
    if not missing:
        return []
    shown = ", ".join(f"{k}={v}" for k, v in sorted(missing.items()))
    return [Difference("labels", "(without them)", shown, IN_PLACE)]


def _retention_change(have: float, wanted: float) -> str:
    """Lowering retention (or removing it) expires the older messages at once (the fact is
    `change_classes`', shared with `topology diff`)."""
    change, _ = change_classes.classify("subscription", "message_retention", have, wanted)
    return DISRUPTIVE if change == change_classes.DATA_LOSS else IN_PLACE


def seconds(value: Any) -> float:
    """A proto Duration as proto-plus hands it over (a timedelta), in seconds."""
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return float(getattr(value, "seconds", 0) or 0) + float(getattr(value, "nanos", 0) or 0) / 1e9


def _backoff(retry: Any, name: str, default: float) -> float:
    return seconds(getattr(retry, name)) if name in retry else default


def shown_duration(value: float) -> str:
    """A duration as the comparisons show it (`0s` for none)."""
    return human_duration(value) if value else "0s"
