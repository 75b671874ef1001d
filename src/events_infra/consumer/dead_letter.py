"""Sending a poison event straight to the dead-letter topic, as Pub/Sub itself would.

Pub/Sub has no "dead-letter this now" call: a handler that knows an event can never succeed
would otherwise be retried until max_delivery_attempts. The consumer publishes a copy to the
subscription's dead-letter topic with the attributes Pub/Sub adds when it dead-letters (so
`eventsctl dlq` shows and replays it like any other letter) and acknowledges the original only
after the publish is confirmed: a failed publish nacks it, so nothing is lost. The consumer's
service account needs `roles/pubsub.publisher` on the dead-letter topic for this.
"""

from __future__ import annotations

from typing import Any

from events_infra.pubsub.attributes import DELIVERY_COUNT, SOURCE_PROJECT, SOURCE_SUBSCRIPTION

POISON_REASON = "poison_reason"
"""Why the consumer dead-lettered the event (the exception's first line, ≤ 1,024 bytes)."""
PUBLISH_DEADLINE_S = 10.0


def dead_letter_attributes(message: Any, subscription: str, reason: str) -> dict[str, str]:
    """The original's attributes plus Pub/Sub's dead-letter bookkeeping and the reason."""
    _, project, _, short_name = subscription.split("/", 3)
    attributes = dict(message.attributes)
    attributes[SOURCE_SUBSCRIPTION] = short_name
    attributes[SOURCE_PROJECT] = project
    attributes[DELIVERY_COUNT] = str(message.delivery_attempt or 1)
    attributes[POISON_REASON] = reason.encode()[:1024].decode(errors="ignore")
    return attributes


def publish_dead_letter(
    publisher: Any, topic: str, message: Any, subscription: str, reason: str
) -> None:
    """Publish one copy to `topic` (one message per request: one ordering key), confirmed
    within PUBLISH_DEADLINE_S or raising the Google API error."""
    from google.api_core.retry import Retry
    from google.pubsub_v1 import PubsubMessage

    copy = PubsubMessage(
        data=message.data,
        attributes=dead_letter_attributes(message, subscription, reason),
        ordering_key=message.ordering_key,
    )
    publisher.publish(
        topic=topic,
        messages=[copy],
        retry=Retry(initial=0.1, maximum=2.0, timeout=PUBLISH_DEADLINE_S),
        timeout=PUBLISH_DEADLINE_S,
    )
