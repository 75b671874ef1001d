"""Create a stack's topics and subscriptions on the Pub/Sub emulator from the topology model.

The same StackConfig that drives `pulumi up` drives this, so local names, dead-letter and retry
policies match production. Idempotent: what exists is left alone (and reported as such).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from events_infra.stack_config.resource_labels import (
    dead_letter_labels,
    subscription_labels,
    topic_labels,
)
from events_infra.stack_config.topology import StackConfig


@dataclass
class Provisioned:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)


def provision(publisher: Any, subscriber: Any, topology: StackConfig) -> Provisioned:
    """Create the events topic, the dead-letter topic and subscription, and the consumer
    subscriptions (with dead-letter and retry policies, never expiring), with the labels and
    settings the program gives them, so `dlq doctor` finds no drift in a fresh local stack.
    The emulator has no Cloud KMS: a topic's `kms_key_name` is left out (doctor names it)."""
    from google.api_core.exceptions import AlreadyExists

    result = Provisioned()
    project = topology.project
    topic = publisher.topic_path(project, topology.topic.name)
    dlq_topic = publisher.topic_path(project, topology.dead_letter.topic)
    topics = [
        {"name": topic, "labels": topic_labels(topology.labels, topology.topic)},
        {"name": dlq_topic, "labels": dead_letter_labels(topology.labels, topology.dead_letter)},
    ]
    if topology.topic.message_retention:
        retention = int(topology.topic.message_retention)
        topics[0]["message_retention_duration"] = {"seconds": retention}
    for request in topics:
        try:
            publisher.create_topic(request=request)
            result.created.append(request["name"])
        except AlreadyExists:
            result.existing.append(request["name"])

    requests = [
        {
            "name": subscriber.subscription_path(project, topology.dead_letter.subscription),
            "topic": dlq_topic,
            "ack_deadline_seconds": topology.dead_letter.ack_deadline,
            "message_retention_duration": {"seconds": int(topology.dead_letter.message_retention)},
            "expiration_policy": {},
            "labels": dead_letter_labels(topology.labels, topology.dead_letter),
        }
    ]
    for sub in topology.subscriptions:
        requests.append(
            {
                "name": subscriber.subscription_path(project, sub.name),
                "topic": topic,
                "ack_deadline_seconds": sub.ack_deadline,
                "message_retention_duration": {"seconds": int(sub.message_retention)},
                "expiration_policy": {},
                "filter": sub.delivery_filter,
                "enable_message_ordering": sub.enable_message_ordering,
                "enable_exactly_once_delivery": sub.enable_exactly_once_delivery,
                "labels": subscription_labels(topology.labels, sub),
                "dead_letter_policy": {
                    "dead_letter_topic": dlq_topic,
                    "max_delivery_attempts": sub.max_delivery_attempts,
                },
                "retry_policy": {
                    "minimum_backoff": _duration(sub.min_backoff),
                    "maximum_backoff": _duration(sub.max_backoff),
                },
            }
        )
    for request in requests:
        try:
            subscriber.create_subscription(request=request)
            result.created.append(request["name"])
        except AlreadyExists:
            result.existing.append(request["name"])
    return result


def _duration(seconds: float) -> dict[str, int]:
    whole = int(seconds)
    return {"seconds": whole, "nanos": round((seconds - whole) * 1e9)}
