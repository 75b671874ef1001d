"""The write helper services call: one event into the outbox, inside the caller's transaction.

    with psycopg.connect(url) as conn:          # a transaction is open until the block ends
        conn.execute("UPDATE trades SET ...")
        enqueue(conn, Event("trade.created", aggregate_type="trade", aggregate_id=trade_id,
                            payload={"trade_id": str(trade_id), ...}))
    # committed together: the event exists if and only if the trade change does

Everything Pub/Sub would refuse is refused here, before anything is written, so a bad event
fails the service's request instead of poisoning the relay later.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

NOTIFY_CHANNEL = "event_outbox"
"""Relays LISTEN here; PostgreSQL folds identical notifications of one transaction into one."""

MAX_MESSAGE_BYTES = 10_000_000  # Pub/Sub's limit on a message: data plus attributes
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_KEY_BYTES = 256
MAX_ATTRIBUTE_VALUE_BYTES = 1024
MAX_ORDERING_KEY_BYTES = 1024
MAX_NAME_LENGTH = 100  # event_type / aggregate_type columns

RESERVED_ATTRIBUTES = frozenset(
    {"event_id", "event_type", "event_version", "aggregate_type", "aggregate_id", "replay_target"}
)
"""Set by the relay (and by replay) on every message; a service may not override them."""


class InvalidEventError(ValueError):
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


INSERT_SQL = """
INSERT INTO event_outbox
    (id, event_type, event_version, aggregate_type, aggregate_id, ordering_key, payload, attributes)
VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb)
"""


def enqueue(conn: Any, event: Event) -> uuid.UUID:
    """Insert `event` into the outbox in `conn`'s open transaction; return its event id.

    Takes a transaction-scoped advisory lock on the ordering key first, so two transactions
    writing the same aggregate get `seq` values in commit order (the relay publishes a key in
    `seq` order). Like a row lock, this can deadlock when two transactions lock the same keys in
    opposite orders: enqueue several events with `enqueue_many`, which locks in a fixed order.
    Sends a NOTIFY so relays wake at once when the transaction commits.
    """
    return enqueue_many(conn, [event])[0]


def enqueue_many(conn: Any, events: list[Event]) -> list[uuid.UUID]:
    """Enqueue several events in the caller's open transaction; return their ids in order.

    All are validated before anything is written. Key locks are taken in sorted order, so two
    transactions enqueueing events for the same keys cannot deadlock on them; events of one key
    keep the order given.
    """
    if getattr(conn, "autocommit", False):
        raise InvalidEventError(
            "enqueue needs an open transaction: the connection is in autocommit mode, so the "
            "event would commit without the business change; use conn.transaction() or "
            "autocommit=False"
        )
    rows = [_validated(event) for event in events]
    with conn.cursor() as cur:
        for key in sorted({row[5] for row in rows}):
            cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))
        for row in sorted(rows, key=lambda r: r[5]):  # stable: one key keeps its order
            cur.execute(INSERT_SQL, row)
        if rows:
            cur.execute("SELECT pg_notify(%s, '')", (NOTIFY_CHANNEL,))
    return [row[0] for row in rows]


def _validated(event: Event) -> tuple[Any, ...]:
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
            f"{len(attributes)} attributes; Pub/Sub allows {MAX_ATTRIBUTES} and the relay adds "
            f"{len(RESERVED_ATTRIBUTES)}"
        )
    size = 0
    for key, value in attributes.items():
        if not isinstance(key, str) or not key:
            raise InvalidEventError(f"attribute keys must be non-empty strings, got {key!r}")
        if not isinstance(value, str):
            raise InvalidEventError(f"attribute {key!r} must be a string, got {value!r}")
        if key.lower().startswith("goog"):
            raise InvalidEventError(f"attribute {key!r}: keys starting with 'goog' are Google's")
        if key in RESERVED_ATTRIBUTES:
            raise InvalidEventError(f"attribute {key!r} is set by the relay; use another name")
        if len(key.encode()) > MAX_ATTRIBUTE_KEY_BYTES:
            raise InvalidEventError(f"attribute key {key[:40]!r}... is over 256 bytes")
        if len(value.encode()) > MAX_ATTRIBUTE_VALUE_BYTES:
            raise InvalidEventError(f"attribute {key!r} value is over 1024 bytes")
        size += len(key.encode()) + len(value.encode())
    return size
