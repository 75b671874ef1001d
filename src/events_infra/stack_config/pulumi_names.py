"""The Pulumi types and logical names of the Pub/Sub resources the stack program declares.

Pulumi-free facts shared by `EventBus` (which declares the resources under these names) and
`eventsctl adopt plan` (whose import file must name them exactly so, or `pulumi import` would
record resources the program does not declare and the next `up` would create a second copy).
A URN is `urn:pulumi:<stack>::<project>::<parent types $-joined>$<type>::<logical name>`.
"""

from __future__ import annotations

PROJECT = "events-infra"
"""`name` in Pulumi.yaml."""
BUS = "events"
"""The EventBus component's logical name in the stack program."""

RELAY_SERVICE = "outbox-relay"
"""The first outbox's relay: its logical name, Cloud Run service and metrics `job`; a further
outbox's (`outboxes`) is `outbox-relay-<name>`."""
MIGRATION_JOB = "outbox-migrate"
"""The first outbox's migration job (Cloud Run job name); a further outbox's adds `-<name>`."""

EVENT_BUS_TYPE = "events-infra:event_bus:EventBus"
TOPIC_TYPE = "gcp:pubsub/topic:Topic"
SUBSCRIPTION_TYPE = "gcp:pubsub/subscription:Subscription"


def topic(bus: str = BUS) -> str:
    return f"{bus}-topic"


def dead_letter_topic(bus: str = BUS) -> str:
    return f"{bus}-dead-letter-topic"


def dead_letter_subscription(bus: str = BUS) -> str:
    return f"{bus}-dead-letter-subscription"


def subscription(name: str, bus: str = BUS) -> str:
    """A consumer subscription, keyed by its GCP name (never by list position)."""
    return f"{bus}-sub-{name}"


def child_urn(stack: str, type_: str, logical_name: str) -> str:
    """The URN of a resource EventBus declares (its parent chain: the stack, then the bus)."""
    return f"urn:pulumi:{stack}::{PROJECT}::{EVENT_BUS_TYPE}${type_}::{logical_name}"
