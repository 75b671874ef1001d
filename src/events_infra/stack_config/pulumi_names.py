"""The Pulumi types and logical names of the resources the stack program declares and
`eventsctl adopt plan` may import (Pub/Sub's, and the outbox's Cloud SQL instance and database).

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
ACCESS = "access"
"""The Access component's (the stack's service accounts and grants)."""

RELAY_SERVICE = "outbox-relay"
"""The first outbox's relay: its logical name, Cloud Run service and metrics `job`; a further
outbox's (`outboxes`) is `outbox-relay-<name>`."""
MIGRATION_JOB = "outbox-migrate"
"""The first outbox's migration job (Cloud Run job name); a further outbox's adds `-<name>`."""
MIGRATION_ACCOUNT = "outbox-migrate"
"""The service account the first outbox's migration job runs as (its IAM database user owns
the schema); a further outbox's is `migrate-<name>` (account ids stop at 30 characters)."""


def migration_account(outbox: str | None = None) -> str:
    return f"migrate-{outbox}" if outbox else MIGRATION_ACCOUNT


EVENT_BUS_TYPE = "events-infra:event_bus:EventBus"
TOPIC_TYPE = "gcp:pubsub/topic:Topic"
SUBSCRIPTION_TYPE = "gcp:pubsub/subscription:Subscription"
OUTBOX_DATABASE_TYPE = "events-infra:outbox_database:OutboxDatabase"
ACCESS_TYPE = "events-infra:access:Access"
SERVICE_ACCOUNT_TYPE = "gcp:serviceaccount/account:Account"
SQL_INSTANCE_TYPE = "gcp:sql/databaseInstance:DatabaseInstance"
SQL_DATABASE_TYPE = "gcp:sql/database:Database"
OUTBOX_DATABASE = "outbox"
"""The first outbox database's component (`database`); a further one's (`outboxes`) adds
`-<name>`."""


def topic(bus: str = BUS) -> str:
    return f"{bus}-topic"


def dead_letter_topic(bus: str = BUS) -> str:
    return f"{bus}-dead-letter-topic"


def dead_letter_subscription(bus: str = BUS) -> str:
    return f"{bus}-dead-letter-subscription"


def subscription(name: str, bus: str = BUS) -> str:
    """A consumer subscription, keyed by its GCP name (never by list position)."""
    return f"{bus}-sub-{name}"


def outbox_database(outbox: str | None = None) -> str:
    return f"{OUTBOX_DATABASE}-{outbox}" if outbox else OUTBOX_DATABASE


def sql_instance(component: str) -> str:
    """The Cloud SQL instance an OutboxDatabase creates (a greenfield stack's)."""
    return f"{component}-instance"


def sql_database(component: str) -> str:
    return f"{component}-database"


def child_urn(stack: str, type_: str, logical_name: str, parent_type: str = EVENT_BUS_TYPE) -> str:
    """The URN of a resource a top-level component declares (EventBus unless told)."""
    return f"urn:pulumi:{stack}::{PROJECT}::{parent_type}${type_}::{logical_name}"
