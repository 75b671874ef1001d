"""What a handler receives: the event the relay published, decoded from the Pub/Sub message."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from events_infra.errors import EventsInfraError
from events_infra.pubsub import attributes as names
from events_infra.pubsub.attributes import IDENTITY, REPLAYED_FROM


class UndecodableEvent(EventsInfraError, ValueError):
    """The message is not an outbox event (no valid event_id, or a body that is not JSON): it
    can never be processed, so it goes to the dead-letter topic."""


@dataclass(frozen=True)
class ReceivedEvent:
    event_id: uuid.UUID
    event_type: str
    event_version: int
    aggregate_type: str
    aggregate_id: str
    payload: Any
    attributes: dict[str, str] = field(default_factory=dict)
    """The event's own attributes (the identity attributes above removed)."""
    ordering_key: str = ""
    delivery_attempt: int | None = None
    """1 on the first delivery; None when the subscription has no dead-letter policy."""
    message_id: str = ""
    replayed_from: str | None = None
    """Set when `eventsctl dlq replay` sent this copy: the DLQ message it came from."""

    @property
    def replayed(self) -> bool:
        return self.replayed_from is not None


def decode(message: Any) -> ReceivedEvent:
    """The event in a google-cloud-pubsub subscriber `Message`, or UndecodableEvent."""
    attributes = dict(message.attributes)
    try:
        event_id = uuid.UUID(attributes.get(names.EVENT_ID, ""))
    except ValueError:
        raise UndecodableEvent(
            f"message {message.message_id} has no valid event_id attribute"
        ) from None
    try:
        payload = json.loads(message.data) if message.data else None
    except ValueError as err:
        raise UndecodableEvent(f"event {event_id}: body is not JSON ({err})") from None
    version = attributes.get(names.EVENT_VERSION, "1")
    return ReceivedEvent(
        event_id=event_id,
        event_type=attributes.get(names.EVENT_TYPE, ""),
        event_version=int(version) if version.isdigit() else 1,
        aggregate_type=attributes.get("aggregate_type", ""),
        aggregate_id=attributes.get(names.AGGREGATE_ID, ""),
        payload=payload,
        attributes={k: v for k, v in attributes.items() if k not in IDENTITY},
        ordering_key=message.ordering_key,
        delivery_attempt=message.delivery_attempt,
        message_id=message.message_id,
        replayed_from=attributes.get(REPLAYED_FROM),
    )
