"""The `outboxes` section of a stack: more outbox databases, each with a relay of its own.

The outbox must live in the database of the transactions it records, so a company whose
services keep their data in several databases needs an outbox in each. `events-infra:database`
is the first outbox (its resources keep their names); every entry here adds one more: the
schema, the IAM users and conditioned grants, the migration job, a relay service
(`outbox-relay-<name>`) and its alerts, all bound to that database. Usually an `existing` one:
the service's own instance and database, named, never declared.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

from events_infra.stack_config.access_config import Account
from events_infra.stack_config.config_types import Strict, matches
from events_infra.stack_config.database_config import DatabaseConfig
from events_infra.stack_config.pulumi_names import MIGRATION_JOB, RELAY_SERVICE

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,18}[a-z0-9]$")


class OutboxConfig(Strict):
    """One more outbox database and what serves it."""

    name: Annotated[
        str,
        matches(_NAME, "a short id (2–20 lowercase letters, digits, hyphens; a letter first)"),
    ]
    """Names its resources: relay service `outbox-relay-<name>`, job `outbox-migrate-<name>`."""
    database: DatabaseConfig
    writers: list[Account] = Field(default_factory=list)
    """Services writing events to this database: each gets a Cloud SQL IAM login as PostgreSQL
    role events_outbox_writer on its instance."""

    @property
    def relay_service(self) -> str:
        return f"{RELAY_SERVICE}-{self.name}"

    @property
    def migration_job(self) -> str:
        return f"{MIGRATION_JOB}-{self.name}"


def relay_service_of(outbox: OutboxConfig | None) -> str:
    """The relay service (and metrics `job`) of one of `outboxes`, or of the first outbox."""
    return outbox.relay_service if outbox is not None else RELAY_SERVICE
