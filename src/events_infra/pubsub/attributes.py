"""The message-attribute contract: every attribute name events-infra sets or reads, in one place.

The relay sets the event identity on every message (`events_infra.pubsub.publish_requests`);
consumers dedupe and route on it (`events_infra.consumer.event`); services may not write it
themselves (`events_infra.outbox.event_validation`). Subscription filters admit a replayed copy
only at the subscription `replay_target` names (`events_infra.stack_config.topology`). Pub/Sub
itself adds the `CloudPubSubDeadLetter*` attributes to a dead-lettered message (the
dead-letter topic documentation); the DLQ tools read them and `dlq replay` adds its own
`replay_count` / `replayed_from`.
"""

from __future__ import annotations

EVENT_ID = "event_id"
EVENT_TYPE = "event_type"
EVENT_VERSION = "event_version"
AGGREGATE_TYPE = "aggregate_type"
AGGREGATE_ID = "aggregate_id"
IDENTITY = (EVENT_ID, EVENT_TYPE, EVENT_VERSION, AGGREGATE_TYPE, AGGREGATE_ID)
"""Set by the relay on every message from the outbox row's columns."""

REPLAY_TARGET = "replay_target"
"""On a replayed copy: the one subscription whose filter admits it."""
REPLAY_COUNT = "replay_count"
REPLAYED_FROM = "replayed_from"

RESERVED = frozenset({*IDENTITY, REPLAY_TARGET, REPLAY_COUNT, REPLAYED_FROM})
"""Set by the relay (identity) and by replay (`replay_*`); a service's own attributes may not:
`replay_target` on an event would make it reach one subscription or none, `replayed_from` would
make consumers dedupe it as someone else's copy."""
RESERVED_PREFIXES = ("replay_", "CloudPubSubDeadLetter")
"""Whole families kept for replay and for Pub/Sub's dead-letter bookkeeping (and `goog…`, in
any case, for Google: Pub/Sub refuses those keys itself)."""


def is_reserved(key: str) -> bool:
    """Whether a writer may not set attribute `key` (the database's insert check, migration
    0004, refuses the same keys: tests/test_outbox_hardening.py pins them together)."""
    return key in RESERVED or key.startswith(RESERVED_PREFIXES) or key.lower().startswith("goog")


DEAD_LETTER_PREFIX = "CloudPubSubDeadLetter"
SOURCE_SUBSCRIPTION = f"{DEAD_LETTER_PREFIX}SourceSubscription"
SOURCE_PROJECT = f"{DEAD_LETTER_PREFIX}SourceSubscriptionProject"
DELIVERY_COUNT = f"{DEAD_LETTER_PREFIX}SourceDeliveryCount"
ORIGINAL_PUBLISH_TIME = f"{DEAD_LETTER_PREFIX}SourceTopicPublishTime"
BOOKKEEPING = (SOURCE_SUBSCRIPTION, SOURCE_PROJECT, DELIVERY_COUNT, ORIGINAL_PUBLISH_TIME)
"""What Pub/Sub adds to a dead-lettered message."""
