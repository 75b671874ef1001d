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

RESERVED = frozenset({*IDENTITY, REPLAY_TARGET})
"""Set by the relay (and by replay) on every message; a service's own attributes may not."""

DEAD_LETTER_PREFIX = "CloudPubSubDeadLetter"
SOURCE_SUBSCRIPTION = f"{DEAD_LETTER_PREFIX}SourceSubscription"
SOURCE_PROJECT = f"{DEAD_LETTER_PREFIX}SourceSubscriptionProject"
DELIVERY_COUNT = f"{DEAD_LETTER_PREFIX}SourceDeliveryCount"
ORIGINAL_PUBLISH_TIME = f"{DEAD_LETTER_PREFIX}SourceTopicPublishTime"
BOOKKEEPING = (SOURCE_SUBSCRIPTION, SOURCE_PROJECT, DELIVERY_COUNT, ORIGINAL_PUBLISH_TIME)
"""What Pub/Sub adds to a dead-lettered message."""
