"""The labels each Pub/Sub resource carries: the stack's, the resource's own from the config, and
the ones events-infra adds itself. One home, so `EventBus` (which sets them) and
`eventsctl adopt plan` (which compares a live estate with them) cannot disagree."""

from __future__ import annotations

from collections.abc import Mapping

from events_infra.stack_config import limits
from events_infra.stack_config.topology import (
    DeadLetterConfig,
    SubscriptionConfig,
    TopicConfig,
    merge_labels,
)

DEAD_LETTER_LABELS = {"events-infra-role": "dead-letter"}
"""Marks the dead-letter topic and subscription for the policy pack and for people browsing."""
ATTEMPTS_OVERRIDE_LABELS = {"max-delivery-attempts-override": "true"}
"""Set only when the stack config states why it chose other attempts than the audit's 5
(`max_delivery_attempts_reason`), so the policy pack can tell a deliberate override from a
mistake: a subscription declared with other attempts and no reason has no label and fails it."""


def topic_labels(stack: Mapping[str, str], topic: TopicConfig) -> dict[str, str]:
    return merge_labels(stack, topic.labels)


def dead_letter_labels(stack: Mapping[str, str], dead_letter: DeadLetterConfig) -> dict[str, str]:
    """The dead-letter topic's and subscription's."""
    return merge_labels(stack, dead_letter.labels, DEAD_LETTER_LABELS)


def subscription_labels(stack: Mapping[str, str], sub: SubscriptionConfig) -> dict[str, str]:
    override = sub.max_delivery_attempts != limits.DEFAULT_MAX_DELIVERY_ATTEMPTS and bool(
        sub.max_delivery_attempts_reason
    )
    return merge_labels(stack, sub.labels, ATTEMPTS_OVERRIDE_LABELS if override else {})
