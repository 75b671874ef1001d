"""Each component's inputs (awsx-style `XArgs`): only the sections of the stack model it uses.

A component takes its Args, not the whole `StackConfig`, so what it depends on is visible in
one place and it can be declared from another program with just those values. `from_stack`
builds each from the validated stack model (stacks/__main__.py does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from events_infra.stack_config import pulumi_names as names
from events_infra.stack_config.access_config import AccessConfig
from events_infra.stack_config.alerting_config import AlertingConfig
from events_infra.stack_config.database_config import DatabaseConfig
from events_infra.stack_config.outbox_config import OutboxConfig
from events_infra.stack_config.pulumi_names import MIGRATION_JOB
from events_infra.stack_config.relay_config import RelayDeployConfig
from events_infra.stack_config.topology import (
    DeadLetterConfig,
    StackConfig,
    SubscriptionConfig,
    TopicConfig,
    merge_labels,
)


@dataclass(frozen=True)
class StackBasics:
    """What every component needs: where, whether production, the stack's labels."""

    project: str
    production: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    retain_data: bool = False
    """Data resources (topics, subscriptions, the database) are retained on delete."""

    def resource_labels(self, *extra: Mapping[str, str]) -> dict[str, str]:
        return merge_labels(self.labels, *extra)


def _basics(stack: StackConfig) -> dict[str, object]:
    return {
        "project": stack.project,
        "production": stack.production,
        "labels": stack.labels,
        "retain_data": stack.retains_data,
    }


@dataclass(frozen=True)
class EventBusArgs(StackBasics):
    topic: TopicConfig = field(default_factory=TopicConfig)
    dead_letter: DeadLetterConfig | None = None
    subscriptions: list[SubscriptionConfig] = field(default_factory=list)

    @classmethod
    def from_stack(cls, stack: StackConfig) -> EventBusArgs:
        return cls(**_basics(stack), topic=stack.topic, dead_letter=stack.dead_letter,
                   subscriptions=stack.subscriptions)  # fmt: skip


@dataclass(frozen=True)
class OutboxDatabaseArgs(StackBasics):
    database: DatabaseConfig | None = None
    migration_image: str | None = None
    """The project's image by digest: a private-IP instance is migrated by a job running it."""
    migration_job: str = MIGRATION_JOB
    """The Cloud Run job's name (one per outbox database)."""
    migration_account: str = names.MIGRATION_ACCOUNT
    """The account id the job runs as (one per outbox database)."""

    @classmethod
    def from_stack(
        cls, stack: StackConfig, outbox: OutboxConfig | None = None
    ) -> OutboxDatabaseArgs:
        """The first outbox (`database`), or one of `outboxes`."""
        image = stack.relay.image if stack.relay else None
        if outbox is None:
            return cls(**_basics(stack), database=stack.database, migration_image=image)
        return cls(**_basics(stack), database=outbox.database, migration_image=image,
                   migration_job=outbox.migration_job,
                   migration_account=names.migration_account(outbox.name))  # fmt: skip


@dataclass(frozen=True)
class DlqAlertingArgs(StackBasics):
    stack: str = ""
    alerting: AlertingConfig = field(default_factory=AlertingConfig)
    topic: TopicConfig = field(default_factory=TopicConfig)
    dead_letter: DeadLetterConfig | None = None
    subscriptions: list[SubscriptionConfig] = field(default_factory=list)
    relay: RelayDeployConfig | None = None
    database: DatabaseConfig | None = None
    outboxes: list[OutboxConfig] = field(default_factory=list)

    @classmethod
    def from_stack(cls, stack: StackConfig, name: str) -> DlqAlertingArgs:
        return cls(**_basics(stack), stack=name, alerting=stack.alerting, topic=stack.topic,
                   dead_letter=stack.dead_letter, subscriptions=stack.subscriptions,
                   relay=stack.relay, database=stack.database,
                   outboxes=stack.outboxes)  # fmt: skip


@dataclass(frozen=True)
class AccessArgs(StackBasics):
    access: AccessConfig = field(default_factory=AccessConfig)
    consumer_accounts: Mapping[str, str | None] = field(default_factory=dict)
    """Subscription -> the identity consuming it (None: push, nobody pulls)."""
    outbox_writers: Mapping[str, list[str]] = field(default_factory=dict)
    """Outbox (of `outboxes`) -> the services writing events to its database."""

    @classmethod
    def from_stack(cls, stack: StackConfig) -> AccessArgs:
        accounts = {s.name: stack.consumer_account(s.name) for s in stack.subscriptions}
        writers = {o.name: list(o.writers) for o in stack.outboxes}
        return cls(**_basics(stack), access=stack.access, consumer_accounts=accounts,
                   outbox_writers=writers)  # fmt: skip
