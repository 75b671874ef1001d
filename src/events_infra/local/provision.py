"""Create a stack's topics and subscriptions on the Pub/Sub emulator from the topology model.

The same StackConfig that drives `pulumi up` drives this, so local names, dead-letter and retry
policies match production. Idempotent: what exists is left alone (and reported as such).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from events_infra.stack_config.topology import StackConfig


@dataclass
class Provisioned:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)


def provision(publisher: Any, subscriber: Any, topology: StackConfig) -> Provisioned:
    """Create the events topic, the dead-letter topic and subscription, and the consumer
    subscriptions (with dead-letter and retry policies, never expiring)."""
    from google.api_core.exceptions import AlreadyExists

    result = Provisioned()
    project = topology.project
    topic = publisher.topic_path(project, topology.topic.name)
    dlq_topic = publisher.topic_path(project, topology.dead_letter.topic)
    for path in (topic, dlq_topic):
        try:
            publisher.create_topic(name=path)
            result.created.append(path)
        except AlreadyExists:
            result.existing.append(path)

    requests = [
        {
            "name": subscriber.subscription_path(project, topology.dead_letter.subscription),
            "topic": dlq_topic,
            "ack_deadline_seconds": topology.dead_letter.ack_deadline,
            "message_retention_duration": {"seconds": int(topology.dead_letter.message_retention)},
            "expiration_policy": {},
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
