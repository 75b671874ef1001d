"""The one validated model of a stack's event topology.

The Pulumi program, the local emulator setup and `eventsctl` all read a stack through this module,
so resource names and delivery settings can never drift between them. Validation happens here,
before any resource is declared, and every problem names the config key, the bad value and the
range GCP allows: a bad value must fail at `pulumi preview`, never half-way through `pulumi up`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, ValidationError, model_validator

from events_infra.errors import EventsInfraError
from events_infra.pubsub.attributes import REPLAY_TARGET
from events_infra.stack_config import limits
from events_infra.stack_config.access_config import AccessConfig, default_consumer_account
from events_infra.stack_config.alerting_config import (
    AlertingConfig,
    PagerDutyChannel,
    WebhookChannel,
)
from events_infra.stack_config.config_types import (
    AckDeadline,
    Attempts,
    Backoff,
    KmsKey,
    Labels,
    PubSubId,
    Retention,
    Strict,
    SubscriptionRef,
    email,
    fail,
    https_url,
    is_pubsub_id,
    matches,
    project_id,
)
from events_infra.stack_config.database_config import REGION, DatabaseConfig
from events_infra.stack_config.durations import gcp_duration, human_duration
from events_infra.stack_config.outbox_config import OutboxConfig
from events_infra.stack_config.relay_config import RelayDeployConfig

CONFIG_NAMESPACE = "events-infra"
"""Stack config keys of this project are `events-infra:<key>` (the Pulumi project name)."""

REPLAY_TARGET_ATTRIBUTE = REPLAY_TARGET  # the contract lives in events_infra.pubsub.attributes
"""Attribute a replayed dead letter carries so that only the subscription it names receives it."""

MAX_FILTER_BYTES = 256
"""GCP's limit on a subscription filter."""


class TopologyError(EventsInfraError, ValueError):
    """A stack config that cannot be deployed; one line per problem, each naming its key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


# --- the model ----------------------------------------------------------------------------------


class SubscriptionSettings(Strict):
    """Delivery settings shared by `subscription_defaults` and each subscription."""

    max_delivery_attempts: Attempts = limits.DEFAULT_MAX_DELIVERY_ATTEMPTS
    max_delivery_attempts_reason: Annotated[str, Field(min_length=3, max_length=300)] | None = None
    """Why this subscription dead-letters after other than the audit's 5 attempts: required
    when it does, so a reviewer and the policy pack see a deliberate override, not a typo."""
    min_backoff: Backoff = limits.DEFAULT_MIN_BACKOFF_S
    max_backoff: Backoff = limits.DEFAULT_MAX_BACKOFF_S
    ack_deadline: AckDeadline = 60
    message_retention: Retention = 7 * 86400.0
    enable_message_ordering: bool = False
    enable_exactly_once_delivery: bool = False
    labels: Labels = Field(default_factory=dict)

    @model_validator(mode="after")
    def _backoff_order(self) -> SubscriptionSettings:
        if self.min_backoff > self.max_backoff:
            raise fail(
                "backoff_order",
                "min_backoff {lo} is greater than max_backoff {hi}; "
                "the minimum must be less than or equal to the maximum",
                lo=human_duration(self.min_backoff),
                hi=human_duration(self.max_backoff),
            )
        return self

    @model_validator(mode="after")
    def _attempts_override_is_explicit(self) -> SubscriptionSettings:
        default = limits.DEFAULT_MAX_DELIVERY_ATTEMPTS
        if self.max_delivery_attempts != default and not self.max_delivery_attempts_reason:
            raise fail(
                "attempts_reason",
                "max_delivery_attempts {n} differs from the audit's {d}: say why in "
                "max_delivery_attempts_reason, or use {d}",
                n=self.max_delivery_attempts, d=default,
            )  # fmt: skip
        return self

    @property
    def min_backoff_gcp(self) -> str:
        return gcp_duration(self.min_backoff)

    @property
    def max_backoff_gcp(self) -> str:
        return gcp_duration(self.max_backoff)

    @property
    def message_retention_gcp(self) -> str:
        return gcp_duration(self.message_retention)


class SubscriptionConfig(SubscriptionSettings):
    """One consumer subscription on the events topic."""

    name: PubSubId
    filter: str | None = None
    replay_filter: bool = True
    """False for a subscription that exists already without the replay filter (a filter cannot
    be added after creation): no filter is declared, so adopting it plans no replacement, and
    it receives every replayed copy, including those targeted at other subscriptions."""
    retain_on_delete: bool | None = None
    """Keep it in GCP when removed from the stack (abandoned: Pulumi forgets it), or override
    the stack's `retain_on_delete` for it alone. Default: the stack's."""
    push_endpoint: Annotated[str, AfterValidator(https_url)] | None = None
    push_service_account: Annotated[str, AfterValidator(email)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SubscriptionConfig:
        if self.push_endpoint and self.enable_exactly_once_delivery:
            raise fail(
                "push_exactly_once",
                "enable_exactly_once_delivery works only for pull subscriptions; "
                "remove push_endpoint or turn exactly-once off",
            )
        if self.push_service_account and not self.push_endpoint:
            raise fail("push_sa", "push_service_account is set but push_endpoint is not; set both")
        size = len(self.delivery_filter.encode())
        if size > MAX_FILTER_BYTES:
            raise fail(
                "filter_size",
                "the delivery filter for {name} would be {size} bytes, over GCP's limit of "
                "{limit}; shorten the name or the filter",
                name=repr(self.name),
                size=size,
                limit=MAX_FILTER_BYTES,
            )
        return self

    def retained(self, stack_default: bool) -> bool:
        """Whether it is retained on delete: its own setting, else the stack's."""
        return stack_default if self.retain_on_delete is None else self.retain_on_delete

    @property
    def delivery_filter(self) -> str:
        """The filter GCP gets: un-targeted messages, plus replays targeted at this subscription.

        GCP cannot change a filter after creation, so every subscription carries it from the
        start; `eventsctl dlq replay` sets the attribute to reach only the subscription that failed
        a message. A user filter is combined with AND (parenthesised: Pub/Sub refuses mixed
        AND/OR without parentheses). With `replay_filter: false` it is the user filter alone, or
        "" (no filter, as GCP reports an unfiltered subscription).
        """
        if not self.replay_filter:
            return self.filter or ""
        attr = REPLAY_TARGET_ATTRIBUTE
        target = f'NOT attributes:{attr} OR attributes.{attr} = "{self.name}"'
        if self.filter:
            return f"({self.filter}) AND ({target})"
        return target


class TopicConfig(Strict):
    """The events topic every service publishes to."""

    name: PubSubId = "events"
    message_retention: Retention | None = None
    kms_key_name: KmsKey | None = None
    labels: Labels = Field(default_factory=dict)

    @property
    def message_retention_gcp(self) -> str | None:
        """Unset keeps GCP's default (no topic-level retention)."""
        return gcp_duration(self.message_retention) if self.message_retention else None


class DeadLetterConfig(Strict):
    """The dead-letter topic and the pull subscription that keeps (and alerts on) its messages."""

    topic: PubSubId
    subscription: PubSubId
    message_retention: Retention = 7 * 86400.0
    ack_deadline: AckDeadline = 60
    labels: Labels = Field(default_factory=dict)

    @property
    def message_retention_gcp(self) -> str:
        return gcp_duration(self.message_retention)


_ENDPOINT = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$")
_ENDPOINT_EXAMPLE = "a host[:port] such as asia-south1-pubsub.googleapis.com:443"


class PublishingConfig(Strict):
    """Where the outbox relay publishes. Ordering keys are honoured only among messages
    published in one region (https://cloud.google.com/pubsub/docs/ordering), and the global
    endpoint may route a publisher to another region after a failover, so the relay uses a
    locational endpoint: `<region>-pubsub.googleapis.com`, the region defaulting to `gcp:region`.
    The emulator path ignores both."""

    region: Annotated[str, matches(REGION, "a GCP region such as asia-south1")] | None = None
    endpoint: Annotated[str, matches(_ENDPOINT, _ENDPOINT_EXAMPLE)] | None = None

    @property
    def api_endpoint(self) -> str | None:
        """The endpoint the relay's publisher uses (None: the client's global default)."""
        if self.endpoint:
            return self.endpoint
        return f"{self.region}-pubsub.googleapis.com:443" if self.region else None


class StackConfig(Strict):
    """Everything one stack deploys, resolved: defaults applied, names final."""

    project: Annotated[str, AfterValidator(project_id)]
    production: bool = False
    retain_on_delete: bool | None = None
    """Keep topics, subscriptions and the outbox database in GCP when Pulumi deletes or
    replaces them (Pulumi forgets them instead; a replacement of a named resource then stops at
    409 ALREADY_EXISTS rather than dropping data). Default: `production`."""
    labels: Labels = Field(default_factory=dict)
    topic: TopicConfig = Field(default_factory=TopicConfig)
    dead_letter: DeadLetterConfig
    subscriptions: list[SubscriptionConfig]
    database: DatabaseConfig | None = None
    outboxes: list[OutboxConfig] = Field(default_factory=list)
    """Further outbox databases (the first is `database`), each a service's own with a relay of
    its own."""
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)
    access: AccessConfig = Field(default_factory=AccessConfig)
    pubsub: PublishingConfig = Field(default_factory=PublishingConfig)
    relay: RelayDeployConfig | None = None
    foreign_subscriptions: list[SubscriptionRef] = Field(default_factory=list)
    """Subscriptions on the events or dead-letter topic that others own (another team's, often
    in its own project: give those as projects/P/subscriptions/S): the stack never creates,
    changes or deletes them, and `dlq doctor` reports them as known instead of as drift."""

    def foreign_paths(self) -> set[str]:
        """`foreign_subscriptions` as full paths (a bare name is in the stack's project)."""
        return {
            s if s.startswith("projects/") else f"projects/{self.project}/subscriptions/{s}"
            for s in self.foreign_subscriptions
        }

    @property
    def retains_data(self) -> bool:
        """Whether data resources are retained on delete (the stack's default)."""
        return self.production if self.retain_on_delete is None else self.retain_on_delete

    def consumer_account(self, subscription: str) -> str | None:
        """The identity that consumes `subscription` (None for push subscriptions)."""
        if self.subscription(subscription).push_endpoint:
            return None
        return self.access.consumers.get(subscription) or default_consumer_account(subscription)

    def subscription(self, name: str) -> SubscriptionConfig:
        """The subscription called `name`; KeyError lists the ones that exist."""
        for sub in self.subscriptions:
            if sub.name == name:
                return sub
        known = ", ".join(s.name for s in self.subscriptions)
        raise KeyError(f"no subscription {name!r} in this stack (it has: {known})")

    def resource_labels(self, *extra: Mapping[str, str]) -> dict[str, str]:
        """Stack labels overlaid with a resource's own labels (the resource wins)."""
        return merge_labels(self.labels, *extra)


def merge_labels(base: Mapping[str, str], *extra: Mapping[str, str]) -> dict[str, str]:
    """`base` overlaid with each of `extra` in turn (the later wins)."""
    merged = dict(base)
    for labels in extra:
        merged.update(labels)
    return merged


# --- parsing ------------------------------------------------------------------------------------


def parse_topology(
    values: Mapping[str, Any],
    project: Any,
    secret_keys: set[str] | None = None,
    region: str | None = None,
) -> StackConfig:
    """Validate the `events-infra:*` keys of a stack (namespace stripped) plus its GCP project
    (and `gcp:region`, the default region of `pubsub.region`).

    `secret_keys` names the keys that came from `secure:` values; when given, a secret that sits
    in plain text in the stack file is refused.

    `subscription_defaults` is validated first and on its own, so a bad default is reported once,
    under its own key, instead of once per subscription that inherits it.
    """
    raw = dict(values)
    defaults_raw = raw.pop("subscription_defaults", None) or {}
    problems = _validate(SubscriptionSettings, defaults_raw, prefix="subscription_defaults")
    if problems:
        raise TopologyError(problems)

    subs = raw.get("subscriptions")
    if isinstance(subs, Mapping):  # a map keyed by name is accepted as well as a list
        subs = [{"name": k, **(v or {})} for k, v in subs.items()]
    if isinstance(subs, list) and isinstance(defaults_raw, Mapping):
        subs = [{**defaults_raw, **s} if isinstance(s, Mapping) else s for s in subs]
    raw["subscriptions"] = subs if subs is not None else []

    topic = raw.get("topic") or {}
    topic_name = topic.get("name", "events") if isinstance(topic, Mapping) else "events"
    if not (isinstance(topic_name, str) and is_pubsub_id(topic_name)):
        topic_name = "events"  # its own error is reported; don't derive a second bad name
    dead_letter = raw.get("dead_letter") or {}
    if isinstance(dead_letter, Mapping):
        dead_letter = dict(dead_letter)
        dead_letter.setdefault("topic", f"{topic_name}-dlq")
        dead_letter.setdefault("subscription", f"{dead_letter['topic']}-sub")
    raw["dead_letter"] = dead_letter
    raw["project"] = project
    pubsub = raw.get("pubsub")
    if region and (pubsub is None or isinstance(pubsub, Mapping)):
        raw["pubsub"] = {"region": region, **(pubsub or {})}

    problems = _validate(StackConfig, raw, prefix="")
    if problems:
        raise TopologyError(problems)
    config = StackConfig.model_validate(raw)
    problems = _cross_checks(config)
    if secret_keys is not None:
        problems += _plain_text_secrets(config, secret_keys)
    if problems:
        raise TopologyError(problems)
    return config


def _cross_checks(config: StackConfig) -> list[str]:
    """Rules that span several keys: names that must be unique across the stack."""
    ns = CONFIG_NAMESPACE
    problems: list[str] = []
    if not config.subscriptions:
        problems.append(
            f"{ns}:subscriptions: no subscriptions; a topic with no subscription drops every "
            "message published to it, so add at least one"
        )
    dead_letter_sub = config.dead_letter.subscription
    seen: set[str] = set()
    for sub in config.subscriptions:
        if sub.name == dead_letter_sub:
            problems.append(
                f"{ns}:subscriptions[{sub.name}].name: {sub.name!r} is also the name of "
                f"the dead-letter subscription ({ns}:dead_letter.subscription); "
                "subscription names must be unique"
            )
        elif sub.name in seen:
            problems.append(
                f"{ns}:subscriptions[{sub.name}].name: {sub.name!r} is used by more than one "
                "subscription; subscription names must be unique"
            )
        seen.add(sub.name)
    problems += _outbox_checks(config)
    names = {s.name for s in config.subscriptions}
    for name in config.access.consumers:
        if name not in names:
            problems.append(
                f"{ns}:access.consumers.{name}: no subscription {name!r} in this stack "
                f"(it has: {', '.join(sorted(names))})"
            )
    for sub in config.subscriptions:
        if not sub.push_endpoint and config.consumer_account(sub.name) is None:
            problems.append(
                f"{ns}:access.consumers.{sub.name}: {sub.name!r} gives no valid default account "
                f"id ('<name>-consumer', 6–30 lowercase characters); set one here"
            )
    if config.topic.name == config.dead_letter.topic:
        problems.append(
            f"{ns}:dead_letter.topic: {config.dead_letter.topic!r} is also {ns}:topic.name; "
            "a topic cannot be its own dead-letter topic"
        )
    return problems


def _outbox_checks(config: StackConfig) -> list[str]:
    """Each outbox database can be migrated and relayed; one outbox per instance (its IAM
    database users are per instance); `outboxes` extend `database`, they do not replace it."""
    ns = CONFIG_NAMESPACE
    problems: list[str] = []
    databases = [("database", config.database)] if config.database is not None else []
    databases += [(f"outboxes[{o.name}].database", o.database) for o in config.outboxes]
    instances: dict[tuple[str, str], str] = {}
    for key, database in databases:
        if database is None:
            continue
        if database.private_ip_only and database.migration_principal:
            if config.relay is None:
                problems.append(
                    f"{ns}:{key}.private_network: the schema of a private-IP instance is applied "
                    f"by a Cloud Run job inside the VPC running the relay's image: add {ns}:relay "
                    "(image_repository)"
                )
            if not database.migration_principal.endswith(".gserviceaccount.com"):
                problems.append(
                    f"{ns}:{key}.migration_principal: {database.migration_principal!r} must be "
                    "a service account: the migration job inside the VPC runs as it"
                )
        where = (database.region, database.instance)
        if where in instances:
            problems.append(
                f"{ns}:{key}.instance: {database.instance!r} also holds {ns}:{instances[where]}; "
                "one outbox per instance (the relay's and writers' IAM database users are per "
                "instance): put the events of both services in one of the two databases"
            )
        instances.setdefault(where, key)
    if config.relay is not None and config.database is None:
        problems.append(
            f"{ns}:relay: the relay publishes the outbox, and this stack has none: add "
            f"{ns}:database or remove {ns}:relay"
        )
    if config.outboxes and config.database is None:
        problems.append(
            f"{ns}:outboxes: add the first outbox as {ns}:database (its resources keep their "
            "names); outboxes lists the ones after it"
        )
    if config.outboxes and config.relay is None:
        problems.append(
            f"{ns}:outboxes: each outbox database gets its own relay: add {ns}:relay "
            "(image_repository)"
        )
    seen: set[str] = set()
    for outbox in config.outboxes:
        if outbox.name in seen:
            problems.append(
                f"{ns}:outboxes[{outbox.name}].name: {outbox.name!r} is used by more than one "
                "outbox; outbox names must be unique"
            )
        seen.add(outbox.name)
    return problems


def _plain_text_secrets(config: StackConfig, secret_keys: set[str]) -> list[str]:
    """A PagerDuty key or a webhook password must reach the stack as a Pulumi secret, never as
    plain YAML."""
    if "alerting" in secret_keys:
        return []
    field_of = {PagerDutyChannel: "service_key", WebhookChannel: "password"}
    return [
        f"{CONFIG_NAMESPACE}:alerting.channels[{c.name}].{field_of[type(c)]}: is plain text in "
        "the stack file; store it encrypted with `pulumi config set --secret --path "
        f"'alerting.channels[{i}].{field_of[type(c)]}' <VALUE>`"
        for i, c in enumerate(config.alerting.channels)
        if type(c) in field_of
    ]


def _validate(model: type[BaseModel], raw: Any, prefix: str) -> list[str]:
    try:
        model.model_validate(raw)
    except ValidationError as err:
        return [_describe(e, raw, prefix, model) for e in err.errors()]
    return []


def config_key(loc: tuple[Any, ...], raw: Any, prefix: str = "") -> str:
    """`('subscriptions', 1, 'min_backoff')` -> `events-infra:subscriptions[billing].min_backoff`.

    List positions are shown as the entry's name: people find entries by name, not by index.
    """
    if not prefix and loc[:1] == ("project",):
        return "gcp:project"
    parts: list[str] = [prefix] if prefix else []
    node = raw
    for item in loc:
        if isinstance(item, int):
            entry = node[item] if isinstance(node, list) and item < len(node) else None
            name = entry.get("name") if isinstance(entry, Mapping) else None
            parts[-1] += f"[{name}]" if name else f"[{item}]"
        else:
            parts.append(str(item))
        node = _child(node, item)
    return f"{CONFIG_NAMESPACE}:" + ".".join(parts)


def _child(node: Any, item: Any) -> Any:
    if isinstance(node, Mapping):
        return node.get(item)
    if isinstance(node, list) and isinstance(item, int) and item < len(node):
        return node[item]
    return None


def _describe(error: Any, raw: Any, prefix: str, model: type[BaseModel]) -> str:
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        parent_model = _model_at(model, loc[:-1])
        known = sorted(parent_model.model_fields) if parent_model else []
        guess = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean {guess[0]!r}?" if guess else f"known keys: {', '.join(known)}"
        return f"{config_key(loc, raw, prefix)}: unknown key ({hint})"
    if kind == "missing":
        return f"{config_key(loc, raw, prefix)}: required key is missing"
    message = error["msg"]
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
    elif kind.endswith(("_type", "_parsing")) or kind in {"literal_error", "enum"}:
        message = f"{error.get('input')!r} is not valid: {message[0].lower()}{message[1:]}"
    return f"{config_key(loc, raw, prefix)}: {message}"


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the field at `loc`, to suggest the key someone meant."""
    current: Any = model
    for item in loc:
        if isinstance(item, int):
            continue
        field = current.model_fields.get(item) if isinstance(current, type) else None
        if field is None:
            return None
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        candidates = [annotation, *args]
        current = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
        if current is None:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None
