"""Pub/Sub's production limits on a Publish request, in one place.

The relay builds requests within them and the strict proxy refuses requests that break them, as
Google Cloud does (the emulator accepts all of these). Sources:

- one ordering key per request: the `ordering_key` field of `PubsubMessage` in the API reference
  (installed as `google/pubsub_v1/types/pubsub.py`): "All PubsubMessages published in a given
  PublishRequest must specify the same ordering_key value";
- 1,000 messages and 10 MB per request, 100 attributes per message, 256-byte attribute keys,
  1,024-byte attribute values, keys not starting with `goog`, 1,024-byte ordering keys: the
  Pub/Sub resource limits (https://cloud.google.com/pubsub/quotas#resource_limits); the client
  library uses the same request size (`_SERVER_PUBLISH_MAX_BYTES = 10 * 1000 * 1000` in
  `google/cloud/pubsub_v1/publisher/_batch/thread.py`);
- a message needs data or at least one attribute: the `attributes` field of `PubsubMessage`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

MAX_REQUEST_MESSAGES = 1000
MAX_REQUEST_BYTES = 10 * 1000 * 1000
MAX_MESSAGE_BYTES = 10 * 1000 * 1000
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_KEY_BYTES = 256
MAX_ATTRIBUTE_VALUE_BYTES = 1024
MAX_ORDERING_KEY_BYTES = 1024
RESERVED_KEY_PREFIX = "goog"


class MessageLike(Protocol):
    """What the checks read of a message: a protobuf `PubsubMessage` or anything shaped like it."""

    data: bytes
    attributes: Mapping[str, str]
    ordering_key: str


def attribute_problem(attributes: Mapping[str, str]) -> str | None:
    """Why Pub/Sub refuses these attributes, or None."""
    if len(attributes) > MAX_ATTRIBUTES:
        return f"{len(attributes)} attributes; Pub/Sub's limit is {MAX_ATTRIBUTES}"
    for key, value in attributes.items():
        if not key:
            return "an attribute key is empty"
        if key.startswith(RESERVED_KEY_PREFIX):
            return f"attribute key {key[:40]!r} starts with 'goog', which is reserved by Google"
        if len(key.encode()) > MAX_ATTRIBUTE_KEY_BYTES:
            return f"attribute key {key[:40]!r} is over {MAX_ATTRIBUTE_KEY_BYTES} bytes"
        if len(value.encode()) > MAX_ATTRIBUTE_VALUE_BYTES:
            return f"attribute {key[:40]!r} value is over {MAX_ATTRIBUTE_VALUE_BYTES} bytes"
    return None


def message_size(data: bytes, attributes: Mapping[str, str], ordering_key: str = "") -> int:
    """Bytes a message counts against the request limit: data, attributes and ordering key."""
    return (
        len(data)
        + sum(len(k.encode()) + len(v.encode()) for k, v in attributes.items())
        + len(ordering_key.encode())
    )


def message_problem(data: bytes, attributes: Mapping[str, str], ordering_key: str) -> str | None:
    """Why Pub/Sub refuses this one message for good, or None."""
    if not data and not attributes:
        return "a message needs non-empty data or at least one attribute"
    size = message_size(data, attributes)
    if size > MAX_MESSAGE_BYTES:
        return f"message is {size} bytes; Pub/Sub's limit is {MAX_MESSAGE_BYTES}"
    if len(ordering_key.encode()) > MAX_ORDERING_KEY_BYTES:
        return f"ordering key is over {MAX_ORDERING_KEY_BYTES} bytes"
    return attribute_problem(attributes)


def publish_request_problem(messages: Iterable[MessageLike]) -> str | None:
    """Why Pub/Sub answers this Publish request with INVALID_ARGUMENT, or None."""
    messages = list(messages)
    if not messages:
        return "a Publish request needs at least one message"
    if len(messages) > MAX_REQUEST_MESSAGES:
        return (
            f"{len(messages)} messages in one Publish request; the limit is {MAX_REQUEST_MESSAGES}"
        )
    keys = {m.ordering_key for m in messages}
    if len(keys) > 1:
        shown = ", ".join(repr(k) for k in sorted(keys)[:3])
        return (
            "all messages of one Publish request must have the same ordering key (or none); "
            f"this request has {len(keys)}: {shown}{', ...' if len(keys) > 3 else ''}"
        )
    total = 0
    for message in messages:
        problem = message_problem(message.data, message.attributes, message.ordering_key)
        if problem:
            return problem
        total += message_size(message.data, message.attributes, message.ordering_key)
    if total > MAX_REQUEST_BYTES:
        return f"Publish request is {total} bytes; Pub/Sub's limit is {MAX_REQUEST_BYTES}"
    return None
