"""What a handler receives: the event the relay published, decoded from the Pub/Sub message."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from events_infra.errors import EventsInfraError
from events_infra.pubsub import attributes as names
from events_infra.pubsub import event_json
from events_infra.pubsub.attributes import IDENTITY, REPLAYED_FROM


class UndecodableEvent(EventsInfraError, ValueError):
    """The message is not an outbox event (no valid event_id, or a body that is not JSON): it
    can never be processed, so it goes to the dead-letter topic."""


LEGACY_NAMESPACE = uuid.UUID("5b0c6f2e-3d0a-4b7e-9a52-6c1e0e2f7a10")
"""Namespace of the event ids derived for old-path messages (uuid5 of `message:<id>` or of
`<field>:<value>`), so the same message always gets the same id, in every consumer."""


@dataclass(frozen=True)
class LegacyMessages:
    """How a consumer takes in messages from the old direct-publish path during a cutover:
    no `event_id` attribute, the type perhaps only in the body, a body perhaps not JSON.

    Such a message is handled, never dead-lettered for its format. Its event id is the UUID in
    body field `id_field` (a non-UUID value is hashed into one), else one derived from the
    Pub/Sub message id (stable across redeliveries, but a re-publish by the old path is a new
    message: give the old path the ids the outbox will use, `Event(event_id=...)`, so both
    copies dedupe during a dual-publish rollout)."""

    id_field: str | None = None
    type_field: str | None = "event_type"
    """Body field holding the event type when the `event_type` attribute is missing."""


@dataclass(frozen=True)
class ReceivedEvent:
    event_id: uuid.UUID
    event_type: str
    event_version: int
    aggregate_type: str
    aggregate_id: str
    payload: Any
    """The JSON body; for an old-path message whose body is not JSON, the raw bytes."""
    attributes: dict[str, str] = field(default_factory=dict)
    """The event's own attributes (the identity attributes above removed)."""
    ordering_key: str = ""
    delivery_attempt: int | None = None
    """1 on the first delivery; None when the subscription has no dead-letter policy."""
    message_id: str = ""
    replayed_from: str | None = None
    """Set when `eventsctl dlq replay` sent this copy: the DLQ message it came from."""
    legacy: bool = False
    """True for a message from the old direct-publish path (see LegacyMessages)."""

    @property
    def replayed(self) -> bool:
        return self.replayed_from is not None


def decode(message: Any, legacy: LegacyMessages | None = None) -> ReceivedEvent:
    """The event in a google-cloud-pubsub subscriber `Message`, or UndecodableEvent. Anything a
    publisher wrote is untrusted: a failure here is this message's alone."""
    attributes = dict(message.attributes)
    payload, body_error = _body(message.data)
    old_path = legacy if names.EVENT_ID not in attributes else None
    from_old_path = old_path is not None
    if old_path is not None:
        replayed_from = attributes.get(REPLAYED_FROM)
        event_id = _legacy_id(message.message_id, replayed_from, payload, old_path)
    else:
        try:  # present but not a UUID: a broken new-path publisher, not an old-path message
            event_id = uuid.UUID(attributes.get(names.EVENT_ID, ""))
        except ValueError:
            raise UndecodableEvent(
                f"message {message.message_id} has no valid event_id attribute"
            ) from None
    if body_error is not None:
        if not from_old_path:
            raise UndecodableEvent(f"event {event_id}: body is not JSON ({body_error})")
        payload = bytes(message.data)
    event_type = attributes.get(names.EVENT_TYPE, "")
    if not event_type and old_path is not None and old_path.type_field:
        found = payload.get(old_path.type_field) if isinstance(payload, dict) else None
        event_type = found if isinstance(found, str) else ""
    version = attributes.get(names.EVENT_VERSION, "1")
    return ReceivedEvent(
        event_id=event_id,
        event_type=event_type,
        # "²".isdigit() is True and int("²") fails: only ASCII digits are a version
        event_version=int(version) if version.isascii() and version.isdigit() else 1,
        aggregate_type=attributes.get(names.AGGREGATE_TYPE, ""),
        aggregate_id=attributes.get(names.AGGREGATE_ID, ""),
        payload=payload,
        attributes={k: v for k, v in attributes.items() if k not in IDENTITY},
        ordering_key=message.ordering_key,
        delivery_attempt=message.delivery_attempt,
        message_id=message.message_id,
        replayed_from=attributes.get(REPLAYED_FROM),
        legacy=from_old_path,
    )


def _body(data: bytes) -> tuple[Any, str | None]:
    """(parsed JSON, None), or (None, why not): a body nested too deep for the parser is not
    JSON we can take, like any other malformed body."""
    if not data:
        return None, None
    return event_json.decode(data)


def _legacy_id(
    message_id: str, replayed_from: str | None, payload: Any, legacy: LegacyMessages
) -> uuid.UUID:
    """The body's id, else one from the message id; a copy `dlq replay` sent takes the dead
    letter's id (`replayed_from`), so replaying one letter twice still dedupes. Without
    `id_field` the replayed copy's id differs from the original delivery's (Pub/Sub gives a
    dead letter a new message id): a subscription that saw the original and also receives the
    copy (`replay_filter: false`) handles it again."""
    if legacy.id_field and isinstance(payload, dict):
        value = payload.get(legacy.id_field)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            try:
                return uuid.UUID(str(value))
            except ValueError:
                return uuid.uuid5(LEGACY_NAMESPACE, f"{legacy.id_field}:{value}")
    return uuid.uuid5(LEGACY_NAMESPACE, f"message:{replayed_from or message_id}")
