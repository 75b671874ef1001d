"""`eventsctl adopt plan`: what the stack declares against what already runs, before `pulumi up`.

Pulumi plans a plain create for every resource not in its state; on a live estate GCP answers
the create with 409 ALREADY_EXISTS and the first `up` stops half-done. The plan reads the live
Pub/Sub resources the stack declares and sorts each into

- absent: `pulumi up` will create it;
- exists: it must be imported first (the import file, `pulumi import --file`), and each field
  that differs from the model is classed as applied in place by the next `up`, or as needing a
  migration: GCP cannot change a subscription's topic, filter or message ordering, so the
  provider would replace it (delete first: the backlog is dropped). The way through is a new
  subscription beside the old one, or `replay_filter: false` for a filter that is missing.

It also lists subscriptions on the topic that the stack does not declare: they keep receiving
every message and Pulumi never touches them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from events_infra.adopt.cloud_sql import (
    SQLADMIN_ENDPOINT_ENV,
    database_resources,
    sql_admin_clients,
)
from events_infra.adopt.model import DISRUPTIVE as DISRUPTIVE  # re-exported: the plan's classes
from events_infra.adopt.model import IN_PLACE as IN_PLACE
from events_infra.adopt.model import MIGRATION as MIGRATION
from events_infra.adopt.model import AdoptError, Resource
from events_infra.adopt.service_accounts import (
    IAM_ENDPOINT_ENV,
    account_resources,
    declared_accounts,
    iam_client,
)
from events_infra.pubsub.api_calls import bounded, google_errors
from events_infra.pubsub.paths import subscription_path, topic_path
from events_infra.stack_config import live_diff
from events_infra.stack_config import pulumi_names as names
from events_infra.stack_config.live_sql import has_outbox_databases
from events_infra.stack_config.topology import StackConfig


@dataclass
class AdoptPlan:
    stack: str
    project: str
    resources: list[Resource] = field(default_factory=list)
    undeclared: list[str] = field(default_factory=list)
    """Subscriptions on the events topic the stack does not declare (full paths)."""
    not_read: list[str] = field(default_factory=list)
    """What the plan could not check, and why (Cloud SQL in local mode)."""

    @property
    def blocked(self) -> bool:
        """True when adopting as the stack stands would lose data (a replacement of a resource
        holding messages, or a lower retention) or fail half-way (a missing prerequisite): no
        import file is written then."""
        return any(r.needs_migration for r in self.resources)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "project": self.project,
            "resources": [
                {
                    "type": r.type,
                    "name": r.logical_name,
                    "id": r.path,
                    "state": "exists" if r.exists else "absent",
                    "managed": r.managed,
                    "differences": [vars(d) for d in r.differences],
                }
                for r in self.resources
            ],
            "undeclared_subscriptions": self.undeclared,
            "not_read": self.not_read,
            "needs_migration": self.blocked,
        }


def adopt_plan(
    topology: StackConfig,
    stack: str,
    publisher: Any,
    subscriber: Any,
    emulator: str | None,
    sql: tuple[Any, Any] | None = None,
    iam: Any | None = None,
) -> AdoptPlan:
    """Read the live topic, dead-letter topic and subscriptions the stack declares (Pub/Sub
    admin API, read-only, each call bounded) and compare them with the model; with `sql`
    (Cloud SQL Admin instances and databases clients), the outbox databases too, and with
    `iam` (the IAM admin client) the service accounts the stack creates."""
    project = topology.project
    plan = AdoptPlan(stack=stack, project=project)

    def errors(resource: str) -> Any:
        return google_errors(
            AdoptError,
            resource,
            project,
            emulator,
            "check --stack and the stack's gcp:project",
            "adopt plan needs roles/pubsub.viewer on the project",
        )

    def reader(errors: Callable[[str], Any]) -> Callable[..., Any | None]:
        def get(call: Callable[..., Any], resource: str, **request: Any) -> Any | None:
            from google.api_core.exceptions import NotFound

            with errors(resource):
                try:
                    return call(request=request, **bounded())
                except NotFound:
                    return None

        return get

    get = reader(errors)

    events = topic_path(project, topology.topic.name)
    dlq_topic = topic_path(project, topology.dead_letter.topic)
    live_topic = get(publisher.get_topic, f"topic {topology.topic.name!r}", topic=events)
    plan.resources.append(_topic(names.topic(), events, live_topic, topology))
    live_dlq = get(publisher.get_topic, f"topic {topology.dead_letter.topic!r}", topic=dlq_topic)
    plan.resources.append(
        _topic(names.dead_letter_topic(), dlq_topic, live_dlq, topology, dead_letter=True)
    )

    dead_letter = topology.dead_letter
    path = subscription_path(project, dead_letter.subscription)
    live = get(subscriber.get_subscription, f"subscription {path!r}", subscription=path)
    resource = Resource(names.SUBSCRIPTION_TYPE, names.dead_letter_subscription(), path)
    if live is not None:
        resource.exists = True
        resource.differences = live_diff.dead_letter_subscription_diff(live, dlq_topic, topology)
    plan.resources.append(resource)

    for sub in topology.subscriptions:
        path = subscription_path(project, sub.name)
        live = get(subscriber.get_subscription, f"subscription {sub.name!r}", subscription=path)
        resource = Resource(names.SUBSCRIPTION_TYPE, names.subscription(sub.name), path)
        if live is not None:
            resource.exists = True
            resource.differences = live_diff.subscription_diff(
                live, sub, events, dlq_topic, topology
            )
        plan.resources.append(resource)

    if live_topic is not None:
        declared = live_diff.declared_subscriptions(topology)
        with errors(f"the subscriptions of topic {topology.topic.name!r}"):
            attached = publisher.list_topic_subscriptions(request={"topic": events}, **bounded())
            plan.undeclared = sorted(set(attached) - declared)
    sources = (
        ("Cloud SQL", "the Cloud SQL Admin API", SQLADMIN_ENDPOINT_ENV, "roles/cloudsql.viewer",
         has_outbox_databases(topology), sql,
         lambda get: database_resources(topology, *sql, get)),
        ("IAM", "the IAM API", IAM_ENDPOINT_ENV, "roles/iam.serviceAccountViewer",
         any(True for _ in declared_accounts(topology)), iam,
         lambda get: account_resources(topology, iam, get)),
    )  # fmt: skip
    for short, service, variable, role, needed, client, read in sources:
        if not needed:
            continue
        if client is None:
            plan.not_read.append(
                f"{short}: no {service} in local mode (the emulator has none); set "
                f"{variable} or run against the project"
            )
            continue

        def api_errors(resource: str, service: str = service, role: str = role) -> Any:
            return google_errors(
                AdoptError, resource, project, None,
                "check the stack file and its gcp:project",
                f"adopt plan needs {role} on the project", service=service,
            )  # fmt: skip

        plan.resources += read(reader(api_errors))
    return plan


def _topic(
    logical: str, path: str, live: Any | None, topology: StackConfig, dead_letter: bool = False
) -> Resource:
    """The events topic or the dead-letter topic, with what differs from the model."""
    resource = Resource(names.TOPIC_TYPE, logical, path, exists=live is not None)
    if live is not None:
        resource.differences = live_diff.topic_diff(live, topology, dead_letter)
    return resource


def import_file(plan: AdoptPlan) -> dict[str, Any]:
    """A `pulumi import --file` document for exactly the stack's resources that exist, under
    the program's own types, logical names and parents (each component created empty by the
    import), so the URNs are those the next `pulumi up` registers. What the stack relies on but
    does not manage (an `existing` database) is never imported."""
    existing = [r for r in plan.resources if r.exists and r.managed]
    components: dict[str, str] = {}
    for r in existing:
        components.setdefault(r.parent, r.parent_type)
    resources: list[dict[str, Any]] = [
        {"type": type_, "name": name, "component": True} for name, type_ in components.items()
    ]
    resources += [
        {"type": r.type, "name": r.logical_name, "id": r.path, "parent": r.parent} for r in existing
    ]
    return {"resources": resources}


def plan_stack(stack: str, stacks_dir: str | None = None, out: str | None = None) -> AdoptPlan:
    """The plan for a named stack against the project it names (or the emulator that
    PUBSUB_EMULATOR_HOST points at); with `out`, the import file is written there, whole or not
    at all. What `eventsctl adopt plan` runs."""
    import json
    import os
    from pathlib import Path

    from google.cloud import pubsub_v1

    from events_infra.pubsub.key_publisher import make_publisher
    from events_infra.stack_config.stack_files import load_stack
    from events_infra.stack_config.stack_files import stacks_dir as find_dir

    topology = load_stack(stack, find_dir(stacks_dir))
    emulator = os.environ.get("PUBSUB_EMULATOR_HOST")
    with google_errors(AdoptError, "Pub/Sub", topology.project, emulator, "", ""):
        publisher, subscriber = make_publisher(), pubsub_v1.SubscriberClient()
    with google_errors(AdoptError, "Cloud SQL", topology.project, None, "", ""):
        sql = sql_admin_clients() if has_outbox_databases(topology) else None
    with google_errors(AdoptError, "IAM", topology.project, None, "", ""):
        iam = iam_client() if any(True for _ in declared_accounts(topology)) else None
    plan = adopt_plan(topology, stack, publisher, subscriber, emulator, sql, iam)
    if out and not plan.blocked:  # importing now would let the next `up` lose data
        target = Path(out)
        partial = target.with_name(target.name + ".partial")
        try:
            partial.write_text(json.dumps(import_file(plan), indent=2) + "\n")
            partial.replace(target)
        except OSError as err:
            raise AdoptError(f"cannot write {out}: {err.strerror}; choose another --out") from None
    return plan
