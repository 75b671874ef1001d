"""From claimed outbox rows to Publish requests that production Pub/Sub accepts.

One request carries one ordering key (the API reference: "All PubsubMessages published in a
given PublishRequest must specify the same ordering_key value") and stays within the request
limits in `events_infra.pubsub.limits`. Rows Pub/Sub would refuse for good are set aside up front.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from events_infra.errors import EventsInfraError
from events_infra.pubsub import attributes as names
from events_infra.pubsub import event_json
from events_infra.pubsub.limits import (
    MAX_REQUEST_BYTES,
    MAX_REQUEST_MESSAGES,
    message_problem,
    message_size,
)

REQUEST_BYTES_BUDGET = MAX_REQUEST_BYTES * 9 // 10
"""Bytes of messages per request: room under the limit for the request's own framing."""


class MessageRefused(EventsInfraError, ValueError):
    """The row can never be published as it is (too large, attributes Pub/Sub refuses)."""


@dataclass(frozen=True)
class Outgoing:
    """One row as the message it becomes."""

    row_id: Any
    ordering_key: str
    data: bytes
    attributes: dict[str, str]

    @property
    def size(self) -> int:
        return message_size(self.data, self.attributes, self.ordering_key)


def message_attributes(row: dict[str, Any], own: dict[str, Any]) -> dict[str, str]:
    """The row's own attributes plus the event identity consumers dedupe and route on."""
    attributes = {str(k): str(v) for k, v in own.items()}
    attributes[names.EVENT_ID] = str(row["id"])
    attributes[names.EVENT_TYPE] = row["event_type"]
    attributes[names.EVENT_VERSION] = str(row["event_version"])
    attributes[names.AGGREGATE_TYPE] = row["aggregate_type"]
    attributes[names.AGGREGATE_ID] = str(row["aggregate_id"])
    return attributes


def to_message(row: dict[str, Any]) -> Outgoing | MessageRefused:
    """The message for `row`, or why it can never be published as it is. `payload` and
    `attributes` are the row's JSON text (or already decoded values): rows written by `enqueue`
    are checked already, and the database refuses most bad rows (migration 0004), but rows
    written before that, or by a role the checks do not bind, are untrusted."""
    payload_text, own_text = row["payload"], row["attributes"]
    payload, why = _json(payload_text)
    if why:
        return MessageRefused(f"payload: {why}")
    own, why = _json(own_text) if own_text is not None else ({}, None)
    if why or not isinstance(own, dict):
        return MessageRefused(f"attributes: {why or 'not a JSON object'}")
    if isinstance(payload_text, str) and event_json.too_deep(payload_text, payload):
        return MessageRefused(f"payload nests more than {event_json.MAX_DEPTH} levels")
    reserved = sorted(k for k in own if names.is_reserved(str(k)))
    if reserved:
        return MessageRefused(
            f"attribute {reserved[0]!r} is reserved (replay and identity attributes are set "
            "by the relay and by replay, never by a writer)"
        )
    try:
        data = json.dumps(payload, separators=(",", ":")).encode()
    except (RecursionError, ValueError) as err:
        return MessageRefused(f"payload cannot be encoded: {type(err).__name__}")
    attributes = message_attributes(row, own)
    problem = message_problem(data, attributes, row["ordering_key"])
    if problem:
        return MessageRefused(problem)
    return Outgoing(row["id"], row["ordering_key"], data, attributes)


def _json(value: Any) -> tuple[Any, str | None]:
    return event_json.decode(value) if isinstance(value, str | bytes) else (value, None)


def by_key(rows: list[dict[str, Any]]) -> tuple[dict[str, list[Outgoing]], dict[Any, Exception]]:
    """Messages grouped by ordering key, each group in `seq` order, and the refused rows."""
    groups: dict[str, list[Outgoing]] = {}
    refused: dict[Any, Exception] = {}
    for row in sorted(rows, key=lambda r: r["seq"]):
        outcome = to_message(row)
        if isinstance(outcome, MessageRefused):
            refused[row["id"]] = outcome
        else:
            groups.setdefault(outcome.ordering_key, []).append(outcome)
    return groups, refused


def request_chunks(messages: list[Outgoing]) -> list[list[Outgoing]]:
    """Split one key's messages, in order, into requests within the count and size limits."""
    chunks: list[list[Outgoing]] = []
    current: list[Outgoing] = []
    size = 0
    for message in messages:
        if current and (
            len(current) >= MAX_REQUEST_MESSAGES or size + message.size > REQUEST_BYTES_BUDGET
        ):
            chunks.append(current)
            current, size = [], 0
        current.append(message)
        size += message.size
    if current:
        chunks.append(current)
    return chunks
