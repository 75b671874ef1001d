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


def message_attributes(row: dict[str, Any]) -> dict[str, str]:
    """The row's own attributes plus the event identity consumers dedupe and route on."""
    attributes = {str(k): str(v) for k, v in (row["attributes"] or {}).items()}
    attributes[names.EVENT_ID] = str(row["id"])
    attributes[names.EVENT_TYPE] = row["event_type"]
    attributes[names.EVENT_VERSION] = str(row["event_version"])
    attributes[names.AGGREGATE_TYPE] = row["aggregate_type"]
    attributes[names.AGGREGATE_ID] = str(row["aggregate_id"])
    return attributes


def to_message(row: dict[str, Any]) -> Outgoing | MessageRefused:
    """The message for `row`, or why Pub/Sub would refuse it for good (rows written by
    `enqueue` are already checked; this catches rows inserted by other means)."""
    data = json.dumps(row["payload"], separators=(",", ":")).encode()
    attributes = message_attributes(row)
    problem = message_problem(data, attributes, row["ordering_key"])
    if problem:
        return MessageRefused(problem)
    return Outgoing(row["id"], row["ordering_key"], data, attributes)


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
