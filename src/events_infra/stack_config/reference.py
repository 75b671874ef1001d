"""The stack-config key reference in docs/stack-config.md, generated from the model.

Every key a stack file may set under `events-infra:` is a field of `StackConfig` or of one of
its section models, so the table is read off those models: the key path, its type, its default
and what is allowed (the ranges and patterns of the validators in `config_types.py` and the
`*_config.py` modules, read from the validators themselves). What the model cannot say about a
key (why it exists, what `parse_topology` derives when it is left out) is in `NOTES` and
`DEFAULTS` below, keyed by the key path; a note for a key the model no longer has is an error,
so they cannot drift apart. Pulumi-free, like the rest of the package.

`make docs` writes the table between the `generated:` markers of docs/stack-config.md
(`python -m events_infra.cli.reference --write`); tests/test_docs.py fails when the committed
table differs from what the model gives.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import re
import textwrap
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, BeforeValidator, SecretStr
from pydantic.fields import FieldInfo

from events_infra.stack_config.durations import human_duration
from events_infra.stack_config.topology import (
    CONFIG_NAMESPACE,
    MAX_FILTER_BYTES,
    StackConfig,
    SubscriptionSettings,
)

END_MARKER = "<!-- end generated -->"


def start_marker(name: str) -> str:
    return f"<!-- generated: {name} -->"


# --- what the model cannot say ------------------------------------------------------------------

DEFAULTS: dict[str, str] = {
    # derived by parse_topology when the key is left out
    "dead_letter.topic": "`<topic.name>-dlq`",
    "dead_letter.subscription": "`<dead_letter.topic>-sub`",
    "pubsub.region": "`gcp:region`",
    "pubsub.endpoint": "`<pubsub.region>-pubsub.googleapis.com:443`",
    "access.consumers": "`<subscription>-consumer` for each pull subscription",
    # what "unset" means
    "dead_letter": "defaults below",
    "topic.message_retention": "unset (GCP's default)",
    "subscriptions[].push_endpoint": "unset (pull)",
    "database": "unset (no database)",
    "database.private_network": "unset (public IP, connector only)",
    "database.password_user": "unset (IAM authentication only)",
    "database.migration_principal": "unset (no schema step)",
    "relay": "unset (no relay deployed)",
    "relay.image_digest": "set by the infra workflow",
    "relay.region": "`database.region`",
    "alerting.dead_letter_rate": "off",
    "alerting.oldest_unacked": "off",
    "alerting.dlq_retention": "off",
    "alerting.stuck_outbox": "on",
}
"""Default texts for keys whose default is derived or whose "unset" means something."""

NOTES: dict[str, str] = {
    "gcp:project": "the GCP project the stack deploys to",
    "gcp:region": "Pulumi's `gcp` namespace; the default of `pubsub.region`",
    "production": "`true` protects topics and subscriptions (and the Cloud SQL instance)",
    "labels": "GCP labels on every resource",
    "topic.kms_key_name": "also used for the dead-letter topic",
    "topic.labels": "over the stack's `labels`",
    "dead_letter.subscription": "unique in the stack; what the alert watches and `eventsctl "
    "dlq` reads; never expires",
    "dead_letter.message_retention": "how long on-call has to act on a dead letter",
    "dead_letter.labels": "over the stack's `labels`",
    "subscriptions": "at least one; a list of entries with a unique `name` (a map keyed by "
    "name also works)",
    "subscriptions[].name": "unique in the stack, and its replay filter must fit GCP's "
    f"{MAX_FILTER_BYTES}-byte filter limit",
    "subscriptions[].max_delivery_attempts": "failed deliveries before a message is dead-lettered",
    "subscriptions[].min_backoff": "at most `max_backoff`; GCP allows 0s, the policy pack "
    "does not, so neither does the model",
    "subscriptions[].enable_message_ordering": "deliver each ordering key's messages in order",
    "subscriptions[].enable_exactly_once_delivery": "pull subscriptions only",
    "subscriptions[].filter": "a Pub/Sub filter, ANDed with the replay filter every "
    "subscription carries",
    "subscriptions[].push_service_account": "for OIDC-authenticated push; needs `push_endpoint`",
    "subscriptions[].labels": "over the stack's `labels`",
    "database.database_version": "the outbox needs `pg_current_xact_id`, new in 13",
    "database.tier": "`ENTERPRISE`: `db-f1-micro`, `db-g1-small` or `db-custom-CPUS-MB` (1 or "
    "an even number of vCPUs ≤ 96; 0.9–6.5 GB per vCPU, ≥ 3840 MB, multiples of 256 MB); "
    "`ENTERPRISE_PLUS`: `db-perf-optimized-N-CPUS`",
    "database.availability_type": "`REGIONAL` is high availability",
    "database.backup_start_time": "backups and point-in-time recovery are always on",
    "database.transaction_log_retention_days": "the point-in-time recovery window",
    "database.private_network": "private IP only; the schema step then runs as a Cloud Run "
    "job inside the VPC, which needs `relay` and a service-account `migration_principal`",
    "database.logical_decoding": "sets `cloudsql.logical_decoding=on`",
    "database.password_user": "a built-in user whose password is generated and kept as a "
    "Pulumi secret",
    "database.migration_principal": "the IAM email `pulumi up` runs as. With a public IP it "
    "becomes an IAM database user (`cloudsqlsuperuser`) and applies the migrations; with a "
    "private IP the migration job runs as an account of its own (`outbox-migrate`, "
    "`migrate-<name>` for `outboxes`) whose login owns the schema, and this principal only "
    "gets actAs on it",
    "database.labels": "over the stack's `labels`",
    "alerting": "alert policies, notification channels and the dashboard: "
    "[Alerting](alerting-and-access.md#alerting-the-page-when-dead-letters-pile-up)",
    "alerting.dlq_backlog": "the dead-letter subscription's undelivered messages above "
    "`threshold` for `duration`: the DLQ backlog alert, always on",
    "alerting.channels": "notification channels the alert policies notify",
    "alerting.dashboard": "the stack's Cloud Monitoring dashboard",
    "alerting.stuck_outbox": "stacks with a `relay` only; `null` turns it off",
    "alerting.channels[].service_key": "must be a `secure:` value (`pulumi config set "
    "--secret --path ...`); plain text is refused",
    "subscriptions[].max_delivery_attempts_reason": "why this subscription dead-letters after "
    "other than 5 attempts: required when `max_delivery_attempts` is not 5 (EventBus then labels "
    "it `max-delivery-attempts-override=true`, which the policy pack requires)",
    "alerting.channels[].username": "the webhook's basic-auth user (Monitoring sends "
    "`webhook_basicauth`: a receiver without it cannot tell alerts from forgeries)",
    "alerting.channels[].password": "must be a `secure:` value (`pulumi config set "
    "--secret --path ...`); plain text is refused",
    "alerting.existing_channels": "channels created elsewhere, notified as well",
    "alerting.user_labels": "labels on the alert policies",
    "access": "identities and their narrow grants: "
    "[Access](alerting-and-access.md#access-who-may-do-what)",
    "access.relay": "the relay's service account",
    "access.consumers": "subscription name → the identity that consumes it",
    "access.dlq_operators": "people on call (`group:`/`user:` members)",
    "foreign_subscriptions": "names of other teams' subscriptions on the topic: never managed; "
    "`dlq doctor` lists them as known, not as drift",
    "pubsub": "where the relay publishes",
    "pubsub.region": "region of the relay's locational publish endpoint",
    "pubsub.endpoint": "the host[:port] the relay publishes to: ordering keys hold only among "
    "messages published in one region, so the relay never uses the global endpoint when a "
    "region is known",
    "relay": "the outbox relay on Cloud Run ([Running the relay]"
    "(outbox-and-relay.md#running-the-relay)); needs `database`, and is required with a "
    "private-IP `database` (its image runs the migration job)",
    "relay.region": "where the Cloud Run service runs",
    "relay.image_digest": "never a tag; the stack program requires it",
    "relay.max_instances": "at least `min_instances`",
    "relay.proxy_image": "the Cloud SQL Auth Proxy sidecar",
}
"""Why a key exists, or what its validators do not show, after what they allow; in place of the
field's docstring (a string right after it in the model) or its section model's docstring."""

_EXTRA_ROWS = {"gcp:project": [("gcp:region", "string", "unset", "a GCP region")]}
"""Keys read outside the model (`topology_from_config` passes `gcp:region` to parse_topology)."""

# Validators that are plain functions: what each allows, in a few words. A validator that is
# neither here nor a `between`/`matches` check must have a docstring, or the reference fails.
_FUNCTIONS: dict[str, str] = {
    "config_types.pubsub_id": "Pub/Sub name: 3–255 characters, starts with a letter, only "
    "letters, digits and `-_.~+%`, not `goog…`",
    "config_types.project_id": "6–30 lowercase letters, digits or hyphens, starts with a "
    "letter, does not end with a hyphen",
    "config_types.labels_check": "keys `[a-z][a-z0-9_-]{0,62}`, values `[a-z0-9_-]{0,63}`",
    "config_types.https_url": "an `https://` URL",
    "config_types.email": "an email address",
    "config_types.whole_seconds": "whole seconds",
    "database_config._postgres_version": "`POSTGRES_13`–`POSTGRES_17`",
    "access_config._account": "an account id to create (6–30 lowercase letters, digits, "
    "hyphens) or an existing `…iam.gserviceaccount.com` email",
    "alerting_config._non_negative": "≥ 0",
    "alerting_config._whole_minutes": "whole minutes",
}
_SILENT = {"config_types.duration", "alerting_config._channel_type"}
"""Validators that say nothing the type column does not (durations; the channel's `type`)."""


# --- reading the model --------------------------------------------------------------------------


@dataclass
class _Shape:
    """A field's annotation taken apart: its kind and the validators that apply to it."""

    kind: str  # section, sections (a union of models), list, map, literal, or a scalar name
    checks: list[Callable[..., Any]] = field(default_factory=list)
    models: tuple[type[BaseModel], ...] = ()
    item: _Shape | None = None
    values: tuple[Any, ...] = ()


def _shape(annotation: Any, metadata: list[Any] | None = None) -> _Shape:
    checks = [m.func for m in metadata or [] if isinstance(m, AfterValidator | BeforeValidator)]
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation, *extra = get_args(annotation)
            checks += [m.func for m in extra if isinstance(m, AfterValidator | BeforeValidator)]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) == 1:  # `X | None`: unset is the default, shown as such
                annotation = members[0]
                continue
            models = tuple(m for m in members if _is_model(m))
            if len(models) != len(members):
                raise TypeError(f"the reference cannot show a union of {members}")
            return _Shape("sections", checks, models)
        else:
            break
    if _is_model(annotation):
        return _Shape("section", checks, (annotation,))
    if origin is list:
        return _Shape("list", checks, item=_shape(get_args(annotation)[0]))
    if origin is dict:
        return _Shape("map", checks, item=_shape(get_args(annotation)[1]))
    if origin is Literal:
        return _Shape("literal", checks, values=get_args(annotation))
    if annotation is SecretStr:
        return _Shape("secret", checks)
    if any(_name(c) == "config_types.duration" for c in checks):
        return _Shape("duration", checks)
    names = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if annotation not in names:
        raise TypeError(f"the reference cannot show the type {annotation!r}")
    return _Shape(names[annotation], checks)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _name(func: Callable[..., Any]) -> str:
    module = func.__module__.rpartition(".")[2]
    return f"{module}.{func.__qualname__}"


def _check_text(func: Callable[..., Any]) -> str | None:
    """What a validator allows, from the validator itself."""
    qualname = _name(func)
    if qualname in _SILENT:
        return None
    if qualname.endswith("between.<locals>.check"):
        found = inspect.getclosurevars(func).nonlocals
        fmt = found["fmt"]
        why = f" ({found['why']})" if found["why"] else ""
        return f"{fmt(found['lo'])}–{fmt(found['hi'])}{why}"
    if qualname.endswith("matches.<locals>.check"):
        return str(inspect.getclosurevars(func).nonlocals["what"])
    if qualname in _FUNCTIONS:
        return _FUNCTIONS[qualname]
    doc = inspect.getdoc(func)
    if not doc:
        raise ValueError(
            f"the stack-config reference does not know what validator {qualname} allows: "
            "give it a docstring or add it to _FUNCTIONS in stack_config/reference.py"
        )
    return doc.split("\n\n")[0].replace("\n", " ")


def _allowed(shape: _Shape) -> list[str]:
    texts = [t for t in map(_check_text, shape.checks) if t]
    if shape.kind == "literal":
        texts.insert(0, _one_of(shape.values))
    if shape.item is not None and shape.item.kind not in ("section", "sections"):
        texts += [f"each: {t}" for t in _allowed(shape.item)]
    return texts


def _one_of(values: tuple[Any, ...]) -> str:
    shown = [f"`{v}`" for v in values]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


def _type_text(shape: _Shape) -> str:
    if shape.kind in ("list", "map") and shape.item is not None:
        noun = {"section": "sections", "sections": "sections", "literal": "strings"}
        inner = noun.get(shape.item.kind, f"{shape.item.kind}s")
        return f"{shape.kind} of {inner}"
    return {"literal": "string", "sections": "section"}.get(shape.kind, shape.kind)


def _default_text(info: FieldInfo, shape: _Shape) -> str:
    if info.is_required():
        return "required"
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            return "defaults below"
    else:
        value = info.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, dict | list):
        return "`{}`" if isinstance(value, dict) else "`[]`"
    if shape.kind == "duration":
        ranged = [c for c in shape.checks if _name(c).endswith("between.<locals>.check")]
        fmt = inspect.getclosurevars(ranged[0]).nonlocals["fmt"] if ranged else human_duration
        return f"`{fmt(float(value))}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


def _attribute_docs(model: type[BaseModel]) -> dict[str, str]:
    """Field docstrings (a string right after the field) of one model class."""
    docs: dict[str, str] = {}
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(model)))
    except (OSError, TypeError):
        return docs
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    for node, after in itertools.pairwise(body):
        doc = after.value.value if isinstance(after, ast.Expr) else None
        named = isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
        if named and isinstance(doc, str):
            docs[node.target.id] = _sentence(doc) or ""
    return docs


@dataclass(frozen=True)
class Row:
    key: str
    type: str
    default: str
    allowed: str


def _rows(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, str, str, list[str]]]:
    """(key, type, default, allowed texts) for every field of `model`, depth first."""
    docs = _attribute_docs(model)
    fields = model.model_fields
    for name in sorted(fields, key=lambda n: n != "name"):  # an entry's name first
        info = fields[name]
        key = "gcp:project" if model is StackConfig and name == "project" else prefix + name
        if model is StackConfig and name == "subscriptions":
            yield from _subscription_defaults()
        shape = _shape(info.annotation, list(info.metadata))
        allowed = _allowed(shape)
        about = NOTES.get(key) or docs.get(name) or _section_doc(shape)
        if about:
            allowed.append(about)
        yield key, _type_text(shape), _default_text(info, shape), allowed
        yield from _extra(key)
        yield from _children(shape, key)


def _section_doc(shape: _Shape) -> str | None:
    """A section's own docstring (its first paragraph), when it is one model."""
    if shape.kind != "section" or len(shape.models) != 1:
        return None
    return _sentence(inspect.getdoc(shape.models[0]))


def _sentence(doc: str | None) -> str | None:
    """A docstring's first paragraph as a table cell: one line, lower-case start, no period."""
    if not doc:
        return None
    text = " ".join(inspect.cleandoc(doc).split("\n\n")[0].split()).rstrip(".")
    return text[:1].lower() + text[1:]


def _extra(key: str) -> Iterator[tuple[str, str, str, list[str]]]:
    for extra_key, kind, default, allowed in _EXTRA_ROWS.get(key, []):
        yield extra_key, kind, default, [allowed, *filter(None, [NOTES.get(extra_key)])]


def _children(shape: _Shape, key: str) -> Iterator[tuple[str, str, str, list[str]]]:
    target = shape.item if shape.kind in ("list", "map") and shape.item else shape
    if target.kind not in ("section", "sections"):
        return
    child = f"{key}[]." if shape.kind == "list" else f"{key}."
    if len(target.models) == 1:
        yield from _rows(target.models[0], child)
        return
    # A discriminated union (alerting channels): the keys every member has once, the others
    # marked with the `type` that takes them.
    rows: dict[str, tuple[str, str, str, list[str]]] = {}
    kinds: list[str] = []
    for model in target.models:
        [kind] = get_args(model.model_fields["type"].annotation)
        kinds.append(kind)
        for row in _rows(model, child):
            shared = all(row[0][len(child) :] in m.model_fields for m in target.models)
            if not shared:
                row = (*row[:3], [f"with `type: {kind}`", *row[3]])
            rows.setdefault(row[0], row)
    type_key = f"{child}type"
    rows[type_key] = (*rows[type_key][:3], [_one_of(tuple(kinds))])
    yield from rows.values()


def _subscription_defaults() -> Iterator[tuple[str, str, str, list[str]]]:
    keys = ", ".join(f"`{k}`" for k in SubscriptionSettings.model_fields)
    yield (
        "subscription_defaults",
        "section",
        "unset",
        [
            f"any of {keys}: applied to every subscription that does not set it (validated "
            "once, on its own)"
        ],
    )


def stack_config_rows() -> list[Row]:
    """Every key of the stack model, in the order a stack file reads."""
    rows = []
    seen: set[str] = set()
    for key, kind, default, allowed in _rows(StackConfig, ""):
        seen.add(key)
        rows.append(Row(key, kind, DEFAULTS.get(key, default), "; ".join(allowed)))
    stale = sorted((set(NOTES) | set(DEFAULTS)) - seen)
    if stale:
        raise ValueError(
            f"stack_config/reference.py describes keys the model does not have: {stale}"
        )
    return rows


def stack_config_reference() -> str:
    """The markdown table of every stack-config key: key path, type, default, allowed."""
    lines = [
        f"Keys below sit under `{CONFIG_NAMESPACE}:` in `stacks/Pulumi.<stack>.yaml` (written "
        f"`{CONFIG_NAMESPACE}:topic: {{name: events}}` or, with `pulumi config set --path`, "
        f"`{CONFIG_NAMESPACE}:topic.name`), except the two `gcp:` keys. `[]` marks the "
        "entries of a list.",
        "",
        "| key | type | default | allowed |",
        "|---|---|---|---|",
    ]
    for row in stack_config_rows():
        cells = (f"`{row.key}`", row.type, row.default, row.allowed or "")
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Table-cell markdown: pipes escaped everywhere (GFM), `<` and `*` outside code spans."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = re.sub(r"([<*])", r"\\\1", parts[i])
    return "`".join(parts).replace("|", "\\|")


# --- the generated blocks in a document ---------------------------------------------------------


def generated_block(text: str, name: str) -> str:
    """The body between `<!-- generated: NAME -->` and the next `<!-- end generated -->`."""
    start = start_marker(name)
    if text.count(start) != 1:
        raise ValueError(f"expected one {start!r} marker, found {text.count(start)}")
    body = text.split(start, 1)[1]
    if END_MARKER not in body:
        raise ValueError(f"{start!r} has no {END_MARKER!r} after it")
    return body.split(END_MARKER, 1)[0].strip("\n") + "\n"


def replace_generated(text: str, name: str, body: str) -> str:
    """`text` with the block called `name` replaced by `body`."""
    generated_block(text, name)  # the markers are there, once
    head, rest = text.split(start_marker(name), 1)
    _, tail = rest.split(END_MARKER, 1)
    return f"{head}{start_marker(name)}\n{body.strip(chr(10))}\n{END_MARKER}{tail}"
