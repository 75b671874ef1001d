"""The IAM side of `eventsctl adopt plan`: the service accounts the stack creates, read from the
IAM API (read-only: `roles/iam.serviceAccountViewer`).

An account id is unique in a project and the stack creates its accounts by id (the relay,
consumers, writers, the DLQ replayer, each private-IP outbox's migration account). One that
exists already (made by hand for the old path, or by another tool) would fail the first `up`
with 409, so it is listed as existing and imported under the program's own name and parent;
an email given in the config instead of an id is the user's own account, never created here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from events_infra.adopt.model import AdoptError, Resource
from events_infra.pubsub.api_calls import loopback_client, loopback_endpoint
from events_infra.stack_config import pulumi_names as names
from events_infra.stack_config.access_config import is_account_id
from events_infra.stack_config.topology import StackConfig

IAM_ENDPOINT_ENV = "EVENTSCTL_IAM_ENDPOINT"
"""host:port of an IAM API to use instead of Google's (plaintext, loopback only)."""
ACCESS = names.ACCESS


@dataclass(frozen=True)
class DeclaredAccount:
    logical_name: str
    account_id: str
    parent: str
    parent_type: str


def declared_accounts(topology: StackConfig) -> Iterator[DeclaredAccount]:
    """Every service account the program creates, by the names it gives them."""
    access = topology.access

    def by_access(suffix: str, account: str | None) -> Iterator[DeclaredAccount]:
        if account and is_account_id(account):
            yield DeclaredAccount(f"{ACCESS}-{suffix}", account, ACCESS, names.ACCESS_TYPE)

    yield from by_access("relay", access.relay)
    writers = [*access.writers, *(w for o in topology.outboxes for w in o.writers)]
    for account in dict.fromkeys(writers):
        yield from by_access(f"writer-{account.split('@', 1)[0]}", account)
    for sub in topology.subscriptions:
        yield from by_access(f"consumer-{sub.name}", topology.consumer_account(sub.name))
    if access.dlq_operators:
        yield from by_access("replayer", access.replayer)
    databases = [(None, topology.database), *((o.name, o.database) for o in topology.outboxes)]
    for outbox, config in databases:
        if config is not None and config.migration_principal and config.private_ip_only:
            component = names.outbox_database(outbox)
            yield DeclaredAccount(
                f"{component}-migration-account", names.migration_account(outbox), component,
                names.OUTBOX_DATABASE_TYPE,
            )  # fmt: skip


def iam_client() -> Any | None:
    """The IAM admin API client, or None in local mode (the emulator has no IAM)."""
    from google.cloud import iam_admin_v1

    endpoint = loopback_endpoint(IAM_ENDPOINT_ENV, AdoptError)
    if endpoint:
        from google.cloud.iam_admin_v1.services.iam.transports import IAMGrpcTransport

        return loopback_client(iam_admin_v1.IAMClient, IAMGrpcTransport, endpoint)
    if os.environ.get("PUBSUB_EMULATOR_HOST"):
        return None
    return iam_admin_v1.IAMClient()


def account_resources(
    topology: StackConfig, client: Any, get: Callable[..., Any | None]
) -> list[Resource]:
    """One Resource per account the program creates; `get` is plan.py's bounded read."""
    project = topology.project
    found = []
    for account in declared_accounts(topology):
        email = f"{account.account_id}@{project}.iam.gserviceaccount.com"
        path = f"projects/{project}/serviceAccounts/{email}"
        live = get(client.get_service_account, f"service account {email}", name=path)
        found.append(
            Resource(
                names.SERVICE_ACCOUNT_TYPE,
                account.logical_name,
                path,
                exists=live is not None,
                parent=account.parent,
                parent_type=account.parent_type,
            )
        )
    return found
