"""The `access` section of a stack: which identities get which narrow rights.

The infra form of the audit's capability-based authorisation: the relay may publish to the events
topic and use the outbox database, each consumer may read its own subscription only, and the DLQ
operators (people on call) may drain and replay dead letters and read monitoring.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from events_infra.stack_config.config_types import Strict, fail, matches

_ACCOUNT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_MEMBER = re.compile(r"^(user|group|serviceAccount|domain|principal|principalSet):\S+$")
_SERVICE_ACCOUNT_EMAIL = re.compile(
    r"^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9.-]+\.iam\.gserviceaccount\.com$"
)


def _account(value: str) -> str:
    """An account id to create (`orders-relay`) or an existing service account's email."""
    if _ACCOUNT_ID.match(value) or _SERVICE_ACCOUNT_EMAIL.match(value):
        return value
    raise fail(
        "account",
        "{value} is neither a service account id to create (6–30 lowercase letters, digits, "
        "hyphens, starting with a letter) nor an existing ...iam.gserviceaccount.com email",
        value=repr(value),
    )


Account = Annotated[str, AfterValidator(_account)]
Member = Annotated[
    str,
    matches(_MEMBER, "an IAM member such as group:oncall@example.com or user:alice@example.com"),
]


class AccessConfig(Strict):
    """Identities and their grants. Every grant is scoped to one resource."""

    relay: Account = "events-relay"
    consumers: dict[str, Account] = Field(default_factory=dict)
    """Subscription name -> the identity that consumes it; subscriptions not listed get an
    account `<subscription>-consumer` when that is a valid id."""
    dlq_operators: list[Member] = Field(default_factory=list)
    """Who may run `eventsctl dlq`: each may impersonate the replayer account
    (`roles/iam.serviceAccountTokenCreator` on it) and holds nothing else of its own."""
    replayer: Annotated[
        str, matches(_ACCOUNT_ID, "a service account id (6–30 lowercase letters, digits, hyphens)")
    ] = "events-replayer"
    """The account id of the DLQ replayer the operators impersonate (created with them)."""
    writers: list[Account] = Field(default_factory=list)
    """Services that write events: each gets a Cloud SQL IAM login as PostgreSQL role
    events_outbox_writer (an account id is created; an email is used as is)."""


def is_account_id(value: str) -> bool:
    return bool(_ACCOUNT_ID.match(value))


def default_consumer_account(subscription: str) -> str | None:
    """`matching-engine` -> `matching-engine-consumer`, or None if that is no valid id."""
    candidate = f"{subscription.lower()}-consumer"
    return candidate if _ACCOUNT_ID.match(candidate) else None
