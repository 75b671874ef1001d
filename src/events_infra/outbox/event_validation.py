"""Validation shared by every writer: what Pub/Sub or the outbox would refuse is refused before
anything is written, so a bad event fails the service's request instead of poisoning the relay."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from events_infra.errors import EventsInfraError
from events_infra.pubsub.attributes import IDENTITY, RESERVED, is_reserved
from events_infra.pubsub.limits import (  # Pub/Sub's own limits, checked before the INSERT
    MAX_ATTRIBUTE_KEY_BYTES,
    MAX_ATTRIBUTE_VALUE_BYTES,
    MAX_ATTRIBUTES,
    MAX_MESSAGE_BYTES,
    MAX_ORDERING_KEY_BYTES,
)

MAX_NAME_LENGTH = 100  # event_type / aggregate_type columns

RESERVED_ATTRIBUTES = RESERVED
"""Set by the relay (and by replay) on every message; a service may not override them."""


class InvalidEventError(EventsInfraError, ValueError):
    """The event would be refused by Pub/Sub or the outbox; nothing was written."""


@dataclass(frozen=True)
class Event:
    """One domain event. `ordering_key` defaults to `<aggregate_type>:<aggregate_id>`."""

    event_type: str
    aggregate_type: str
    aggregate_id: uuid.UUID | str
    payload: Any
    event_version: int = 1
    attributes: Mapping[str, str] = field(default_factory=dict)
    ordering_key: str | None = None
    event_id: uuid.UUID | None = None


COLUMNS = (
    "id", "event_type", "event_version", "aggregate_type", "aggregate_id", "ordering_key",
    "payload", "attributes",
)  # fmt: skip
"""The outbox columns a writer fills, in the order of `validated_row`'s tuple."""


def validated_rows(events: list[Event]) -> tuple[list[Any], list[tuple[Any, ...]]]:
    """(event ids in the order given, INSERT parameters sorted by ordering key).

    Sorted by lock bucket then key (stably: one key keeps the order given) so the insert
    trigger locks in one global order and two writers cannot deadlock on each other's keys.
    All events are validated before the caller writes anything.
    """
    rows = [validated_row(event) for event in events]
    return [row[0] for row in rows], sorted(rows, key=lambda row: (lock_bucket(row[5]), row[5]))


def lock_bucket(ordering_key: str) -> int:
    """The advisory-lock bucket the insert trigger locks for `ordering_key` (migration 0003's
    `event_outbox_lock_bucket`, computed the same way: low 10 bits of the md5's first 32 bits)."""
    return int(hashlib.md5(ordering_key.encode()).hexdigest()[:8], 16) & 1023


def validated_row(event: Event) -> tuple[Any, ...]:
    """The INSERT parameters for `event`, or InvalidEventError naming the first problem."""
    for name in ("event_type", "aggregate_type"):
        value = getattr(event, name)
        if not isinstance(value, str) or not value.strip():
            raise InvalidEventError(f"{name} must be a non-empty string, got {value!r}")
        if len(value) > MAX_NAME_LENGTH:
            raise InvalidEventError(f"{name} is {len(value)} characters; the limit is 100")
    if isinstance(event.event_version, bool) or not isinstance(event.event_version, int):
        raise InvalidEventError(f"event_version must be an integer, got {event.event_version!r}")
    if event.event_version < 1:
        raise InvalidEventError(f"event_version must be 1 or more, got {event.event_version}")
    try:
        aggregate_id = uuid.UUID(str(event.aggregate_id))
    except ValueError:
        raise InvalidEventError(
            f"aggregate_id must be a UUID, got {event.aggregate_id!r}"
        ) from None
    try:
        payload = json.dumps(event.payload, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise InvalidEventError(f"payload is not JSON-serialisable: {err}") from None

    attributes = dict(event.attributes)
    attributes_size = _check_attributes(attributes)
    ordering_key = event.ordering_key or f"{event.aggregate_type}:{aggregate_id}"
    if len(ordering_key.encode()) > MAX_ORDERING_KEY_BYTES:
        raise InvalidEventError(
            f"ordering_key is over Pub/Sub's {MAX_ORDERING_KEY_BYTES}-byte limit"
        )
    size = len(payload.encode()) + attributes_size
    if size > MAX_MESSAGE_BYTES:
        raise InvalidEventError(
            f"event is {size} bytes (payload plus attributes); Pub/Sub's limit is "
            f"{MAX_MESSAGE_BYTES}: store the body elsewhere and publish a reference"
        )
    event_id = event.event_id or uuid.uuid4()
    return (
        event_id,
        event.event_type,
        event.event_version,
        event.aggregate_type,
        aggregate_id,
        ordering_key,
        payload,
        json.dumps(attributes),
    )


def _check_attributes(attributes: dict[Any, Any]) -> int:
    if len(attributes) > MAX_ATTRIBUTES - len(RESERVED_ATTRIBUTES):
        raise InvalidEventError(
            f"{len(attributes)} attributes; Pub/Sub allows {MAX_ATTRIBUTES} and the relay and "
            f"replay add up to {len(RESERVED_ATTRIBUTES)}"
        )
    size = 0
    for key, value in attributes.items():
        if not isinstance(key, str) or not key:
            raise InvalidEventError(f"attribute keys must be non-empty strings, got {key!r}")
        if not isinstance(value, str):
            raise InvalidEventError(f"attribute {key!r} must be a string, got {value!r}")
        if key.lower().startswith("goog"):
            raise InvalidEventError(f"attribute {key!r}: keys starting with 'goog' are Google's")
        if key in IDENTITY:
            raise InvalidEventError(f"attribute {key!r} is set by the relay; use another name")
        if is_reserved(key):
            raise InvalidEventError(
                f"attribute {key!r} is reserved for replay and Pub/Sub (replay_*, "
                "CloudPubSubDeadLetter*); use another name"
            )
        if len(key.encode()) > MAX_ATTRIBUTE_KEY_BYTES:
            raise InvalidEventError(f"attribute key {key[:40]!r}... is over 256 bytes")
        if len(value.encode()) > MAX_ATTRIBUTE_VALUE_BYTES:
            raise InvalidEventError(f"attribute {key!r} value is over 1024 bytes")
        size += len(key.encode()) + len(value.encode())
    return size
