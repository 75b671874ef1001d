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

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from events_infra.adopt.cloud_sql import (
    SQLADMIN_ENDPOINT_ENV,
    database_resources,
    outbox_databases,
    sql_admin_clients,
)
from events_infra.adopt.model import (
    DISRUPTIVE,
    IN_PLACE,
    MIGRATION,
    AdoptError,
    Difference,
    Resource,
)
from events_infra.adopt.service_accounts import (
    IAM_ENDPOINT_ENV,
    account_resources,
    declared_accounts,
    iam_client,
)
from events_infra.pubsub.api_calls import bounded, google_errors
from events_infra.pubsub.paths import subscription_path, topic_path
from events_infra.stack_config import change_classes
from events_infra.stack_config import pulumi_names as names
from events_infra.stack_config.durations import human_duration
from events_infra.stack_config.resource_labels import (
    dead_letter_labels,
    subscription_labels,
    topic_labels,
)
from events_infra.stack_config.topology import StackConfig, SubscriptionConfig


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
        resource.differences = _dead_letter_subscription_diff(live, dlq_topic, topology)
    plan.resources.append(resource)

    for sub in topology.subscriptions:
        path = subscription_path(project, sub.name)
        live = get(subscriber.get_subscription, f"subscription {sub.name!r}", subscription=path)
        resource = Resource(names.SUBSCRIPTION_TYPE, names.subscription(sub.name), path)
        if live is not None:
            resource.exists = True
            resource.differences = _subscription_diff(live, sub, events, dlq_topic, topology)
        plan.resources.append(resource)

    if live_topic is not None:
        declared = {subscription_path(project, s.name) for s in topology.subscriptions}
        with errors(f"the subscriptions of topic {topology.topic.name!r}"):
            attached = publisher.list_topic_subscriptions(request={"topic": events}, **bounded())
            plan.undeclared = sorted(set(attached) - declared)
    sources = (
        ("Cloud SQL", "the Cloud SQL Admin API", SQLADMIN_ENDPOINT_ENV, "roles/cloudsql.viewer",
         any(True for _ in outbox_databases(topology)), sql,
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
    """The events topic's retention and key, or the dead-letter topic's key (EventBus sets no
    retention on it)."""
    resource = Resource(names.TOPIC_TYPE, logical, path, exists=live is not None)
    if live is None:
        return resource
    wanted = 0.0 if dead_letter else (topology.topic.message_retention or 0.0)
    have = _seconds(live.message_retention_duration) if "message_retention_duration" in live else 0
    if wanted != have:
        resource.differences.append(
            Difference(
                "message_retention",
                _dur(have) if have else "(none)",
                _dur(wanted) if wanted else "(none)",
                _retention_change(have, wanted),
            )
        )
    if (topology.topic.kms_key_name or "") != live.kms_key_name:
        resource.differences.append(
            Difference(
                "kms_key_name",
                live.kms_key_name or "(none)",
                topology.topic.kms_key_name or "(none)",
                IN_PLACE,
            )
        )
    labels = (
        dead_letter_labels(topology.labels, topology.dead_letter)
        if dead_letter
        else topic_labels(topology.labels, topology.topic)
    )
    resource.differences += _labels_diff(live, labels)
    return resource


def _subscription_diff(
    live: Any, sub: SubscriptionConfig, topic: str, dlq_topic: str, topology: StackConfig
) -> list[Difference]:
    found: list[Difference] = []
    new_sub = (
        f"declare a new subscription NEW beside it, deploy, then `eventsctl subscription "
        f"migrate {sub.name} --to NEW`, then retire it (consumers dedupe the overlap by event_id)"
    )
    if live.topic != topic:
        found.append(Difference("topic", live.topic, topic, MIGRATION, new_sub))
    if live.filter != sub.delivery_filter:
        how = new_sub
        if not live.filter and sub.replay_filter:
            how = (
                "set `replay_filter: false` on it (it then receives every replayed copy), or "
                + new_sub
            )
        found.append(
            Difference(
                "filter", live.filter or "(none)", sub.delivery_filter or "(none)", MIGRATION, how
            )
        )
    if live.enable_message_ordering != sub.enable_message_ordering:
        found.append(
            Difference(
                "enable_message_ordering",
                str(live.enable_message_ordering),
                str(sub.enable_message_ordering),
                MIGRATION,
                new_sub,
            )
        )
    found += _delivery_settings_diff(live, sub, dlq_topic)
    if live.ack_deadline_seconds != sub.ack_deadline:
        found.append(
            Difference(
                "ack_deadline", f"{live.ack_deadline_seconds}s", f"{sub.ack_deadline}s", IN_PLACE
            )
        )
    if live.enable_exactly_once_delivery != sub.enable_exactly_once_delivery:
        found.append(
            Difference(
                "enable_exactly_once_delivery",
                str(live.enable_exactly_once_delivery),
                str(sub.enable_exactly_once_delivery),
                IN_PLACE,
            )
        )
    push = live.push_config.push_endpoint if "push_config" in live else ""
    if (push or "") != (sub.push_endpoint or ""):
        found.append(
            Difference("push_endpoint", push or "(pull)", sub.push_endpoint or "(pull)", IN_PLACE)
        )
    found += _retention_expiry_labels(
        live, sub.message_retention, subscription_labels(topology.labels, sub)
    )
    return found


def _delivery_settings_diff(live: Any, sub: SubscriptionConfig, dlq_topic: str) -> list[Difference]:
    """Dead-letter and retry policy: what the audit asks for, applied in place."""
    found = []
    policy = live.dead_letter_policy if "dead_letter_policy" in live else None
    # the API's defaults (google/pubsub_v1/types/pubsub.py): 0 attempts means 5, an unset
    # backoff inside a retry policy means 10 s minimum and 600 s maximum
    have = (
        f"{policy.dead_letter_topic} after {policy.max_delivery_attempts or 5}"
        if policy is not None and policy.dead_letter_topic
        else "(none: failures retry forever)"
    )
    want = f"{dlq_topic} after {sub.max_delivery_attempts}"
    if have != want:
        found.append(Difference("dead_letter_policy", have, want, IN_PLACE))
    retry = live.retry_policy if "retry_policy" in live else None
    have = (
        f"{_dur(_backoff(retry, 'minimum_backoff', 10.0))}-"
        f"{_dur(_backoff(retry, 'maximum_backoff', 600.0))}"
        if retry is not None
        else "(none: immediate redelivery)"
    )
    want = f"{_dur(sub.min_backoff)}-{_dur(sub.max_backoff)}"
    if have != want:
        found.append(Difference("retry_policy", have, want, IN_PLACE))
    return found


def _dead_letter_subscription_diff(
    live: Any, dlq_topic: str, topology: StackConfig
) -> list[Difference]:
    dead_letter = topology.dead_letter
    found = []
    if live.topic != dlq_topic:
        found.append(
            Difference(
                "topic",
                live.topic,
                dlq_topic,
                MIGRATION,
                "choose another dead_letter.subscription name, or empty and delete this one",
            )
        )
    other = "choose another dead_letter.subscription name, or empty and delete this one"
    if live.filter:
        found.append(Difference("filter", live.filter, "(none)", MIGRATION, other))
    if live.enable_message_ordering:
        found.append(Difference("enable_message_ordering", "True", "False", MIGRATION, other))
    if "dead_letter_policy" in live and live.dead_letter_policy.dead_letter_topic:
        topic = live.dead_letter_policy.dead_letter_topic
        found.append(Difference("dead_letter_policy", topic, "(none)", IN_PLACE))
    if "push_config" in live and live.push_config.push_endpoint:
        endpoint = live.push_config.push_endpoint
        found.append(Difference("push_endpoint", endpoint, "(pull)", IN_PLACE))
    if live.ack_deadline_seconds != dead_letter.ack_deadline:
        found.append(
            Difference(
                "ack_deadline",
                f"{live.ack_deadline_seconds}s",
                f"{dead_letter.ack_deadline}s",
                IN_PLACE,
            )
        )
    found += _retention_expiry_labels(
        live, dead_letter.message_retention, dead_letter_labels(topology.labels, dead_letter)
    )
    return found


def _retention_expiry_labels(
    live: Any, retention: float, labels: dict[str, str]
) -> list[Difference]:
    found = []
    have = _seconds(live.message_retention_duration)
    if have != retention:
        change = _retention_change(have, retention)
        found.append(Difference("message_retention", _dur(have), _dur(retention), change))
    ttl = live.expiration_policy.ttl if "expiration_policy" in live else None
    expires = _seconds(ttl) if ttl else 0
    if "expiration_policy" not in live or expires:
        found.append(
            Difference("expiration", f"after {_dur(expires or 31 * 86400)} idle", "never", IN_PLACE)
        )
    return found + _labels_diff(live, labels)


def _labels_diff(live: Any, labels: dict[str, str]) -> list[Difference]:
    """Labels the resource lacks or holds with another value (the stack's, its own, and those
    EventBus adds: stack_config.resource_labels); labels only others set are left alone."""
    missing = {k: v for k, v in labels.items() if live.labels.get(k) != v}
    if not missing:
        return []
    shown = ", ".join(f"{k}={v}" for k, v in sorted(missing.items()))
    return [Difference("labels", "(without them)", shown, IN_PLACE)]


def _retention_change(have: float, wanted: float) -> str:
    """Lowering retention (or removing it) expires the older messages at once (the fact is
    `change_classes`', shared with `topology diff`)."""
    change, _ = change_classes.classify("subscription", "message_retention", have, wanted)
    return DISRUPTIVE if change == change_classes.DATA_LOSS else IN_PLACE


def _seconds(value: Any) -> float:
    """A proto Duration as proto-plus hands it over (a timedelta), in seconds."""
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return float(getattr(value, "seconds", 0) or 0) + float(getattr(value, "nanos", 0) or 0) / 1e9


def _backoff(retry: Any, name: str, default: float) -> float:
    return _seconds(getattr(retry, name)) if name in retry else default


def _dur(seconds: float) -> str:
    return human_duration(seconds) if seconds else "0s"


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
        sql = sql_admin_clients() if any(True for _ in outbox_databases(topology)) else None
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
