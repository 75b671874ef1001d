"""Pub/Sub's HTTP/JSON API as a table of routes onto its gRPC methods.

Google serves every Pub/Sub method over both gRPC and HTTP/JSON, mapped by the `google.api.http`
annotations of its protos (`PUT /v1/{name=projects/*/topics/*}` is `Publisher.CreateTopic` with
the JSON body as the request). The installed client's REST transport carries those annotations
(`_get_http_options`) and the request and response types (`__call__`'s hints), so the table is
read from it rather than copied here: one home for the routes, and a client upgrade that adds a
method adds its route.

The JSON mapping is proto3's (camelCase names, bytes as base64, enums by name, defaults left
out), which `google.protobuf.json_format` implements; errors are Google's JSON error body
(`{"error": {"code": 400, "message": ..., "status": "INVALID_ARGUMENT"}}`) with the HTTP status
`google.api_core.exceptions` maps each gRPC code to.
"""

from __future__ import annotations

import inspect
import re
import typing
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import grpc
from google.api_core import exceptions
from google.protobuf import descriptor, empty_pb2, json_format
from google.protobuf.message import Message

SYSTEM_PARAMETERS = frozenset(
    {"alt", "prettyPrint", "fields", "key", "quotaUser", "access_token", "oauth_token",
     "callback", "upload_protocol", "uploadType", "userIp", "userProject"}
)  # fmt: skip
"""Query parameters every Google API accepts beside a method's own fields, also spelled with a
leading `$` ("System parameters", cloud.google.com/apis/docs/system-parameters); ignored here."""


def is_system_parameter(name: str) -> bool:
    return name.startswith("$") or name in SYSTEM_PARAMETERS


_SERVICES = {
    "google.pubsub_v1.services.publisher.transports.rest.PublisherRestTransport": (
        "google.pubsub.v1.Publisher"
    ),
    "google.pubsub_v1.services.subscriber.transports.rest.SubscriberRestTransport": (
        "google.pubsub.v1.Subscriber"
    ),
    "google.pubsub_v1.services.schema_service.transports.rest.SchemaServiceRestTransport": (
        "google.pubsub.v1.SchemaService"
    ),
}
_IAM_SERVICE = "google.iam.v1.IAMPolicy"
"""The IAM methods are a mixin: their REST routes sit beside Pub/Sub's, their gRPC service
is IAM's."""


class RestError(Exception):
    """A request refused before (or by) the gRPC method: rendered as Google's error body."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return int(exceptions.exception_class_for_grpc_status(self.code).code)

    def body(self) -> dict[str, Any]:
        return {
            "error": {"code": self.http_status, "message": self.message, "status": self.code.name}
        }


@dataclass(frozen=True)
class Route:
    """One HTTP binding of one gRPC method."""

    http_method: str
    template: str
    pattern: re.Pattern[str]
    fields: tuple[str, ...]
    """The request fields the path's variables fill, in the template's order (dotted paths)."""
    body: str | None
    """`*`: the body is the request; a field name: the body is that field; None: no body."""
    grpc_method: str
    request_type: type[Message]
    response_type: type[Message]

    def request(self, path_values: dict[str, str], query: dict[str, list[str]], body: bytes):
        """The gRPC request for this call, or RestError (INVALID_ARGUMENT) saying what is wrong."""
        message = self.request_type()
        unknown = [name for name in query if not is_system_parameter(name)]
        if self.body is not None:
            target = message if self.body == "*" else getattr(message, self.body)
            _parse_body(body, target)
        if unknown:
            if self.body == "*":
                raise RestError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Invalid JSON payload received. Unknown name {unknown[0]!r}: "
                    "this method takes its fields in the body",
                )
            for name in unknown:
                _set_query_field(message, name, query[name])
        for path, value in path_values.items():
            _set_path(message, path, value)
        return message

    def render(self, reply: bytes) -> bytes:
        """The gRPC reply as the JSON body Google's HTTP API answers with."""
        message = self.response_type.FromString(reply)
        return json_format.MessageToJson(message, indent=2).encode()


def _parse_body(body: bytes, target: Message) -> None:
    text = body.decode("utf-8", errors="replace").strip() or "{}"
    try:
        json_format.Parse(text, target)
    except json_format.ParseError as err:
        raise RestError(
            grpc.StatusCode.INVALID_ARGUMENT, f"Invalid JSON payload received. {err}"
        ) from None


def _field(message: Message, json_or_proto_name: str) -> descriptor.FieldDescriptor | None:
    fields = message.DESCRIPTOR.fields_by_name
    found = fields.get(json_or_proto_name)
    if found is not None:
        return found
    return next((f for f in fields.values() if f.json_name == json_or_proto_name), None)


def _set_path(message: Message, dotted: str, value: str) -> None:
    *parents, last = dotted.split(".")
    for name in parents:
        message = getattr(message, name)
    setattr(message, last, value)


def _set_query_field(message: Message, dotted: str, values: list[str]) -> None:
    """Set a (dotted, camelCase or snake_case) query parameter on the request by its type."""
    *parents, last = dotted.split(".")
    for name in parents:
        field = _field(message, name)
        if field is None or field.message_type is None:
            raise RestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Invalid JSON payload received. Unknown name {dotted!r}: Cannot bind query "
                "parameter.",
            )
        message = getattr(message, field.name)
    field = _field(message, last)
    if field is None or field.message_type is not None:
        raise RestError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Invalid JSON payload received. Unknown name {dotted!r}: Cannot bind query parameter.",
        )
    converted = [_scalar(field, dotted, value) for value in values]
    repeated = getattr(field, "is_repeated", None)  # protobuf ≥ 5.29; `label` before
    if repeated is None:
        repeated = field.label == descriptor.FieldDescriptor.LABEL_REPEATED
    if repeated:
        getattr(message, field.name).extend(converted)
    else:
        setattr(message, field.name, converted[-1])


def _scalar(field: descriptor.FieldDescriptor, name: str, value: str) -> Any:
    kind = field.cpp_type
    try:
        if kind == descriptor.FieldDescriptor.CPPTYPE_BOOL:
            if value not in ("true", "false"):
                raise ValueError(value)
            return value == "true"
        if kind in (
            descriptor.FieldDescriptor.CPPTYPE_INT32,
            descriptor.FieldDescriptor.CPPTYPE_INT64,
            descriptor.FieldDescriptor.CPPTYPE_UINT32,
            descriptor.FieldDescriptor.CPPTYPE_UINT64,
        ):
            return int(value)
        if kind == descriptor.FieldDescriptor.CPPTYPE_ENUM:
            return field.enum_type.values_by_name[value].number
    except (ValueError, KeyError):
        raise RestError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Invalid value at {name!r}: {value!r}",
        ) from None
    return value


def _compile(template: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """`/v1/{topic=projects/*/topics/*}:publish` → a regex with one group per variable.

    A `*` is one path segment; resource ids never hold `/` or `:` (Pub/Sub's naming rules), so
    `topics/t:publish` does not also match `GET topics/{topic}`."""
    fields: list[str] = []
    out = ""
    for token in re.split(r"(\{[^}]*\})", template):
        if token.startswith("{"):
            name, _, pattern = token[1:-1].partition("=")
            fields.append(name)
            inner = "".join(
                "[^/:]+" if part == "*" else ".+" if part == "**" else re.escape(part)
                for part in re.split(r"(\*\*|\*)", pattern or "*")
            )
            out += f"({inner})"
        else:
            out += re.escape(token)
    return re.compile(out + r"\Z"), tuple(fields)


def _message_type(hint: Any) -> type[Message]:
    if hint is None or hint is type(None):
        return empty_pb2.Empty
    return hint.pb() if hasattr(hint, "pb") else hint


def _load_routes() -> list[Route]:
    import importlib

    routes: dict[tuple[str, str], Route] = {}
    for dotted, service in _SERVICES.items():
        module_name, _, class_name = dotted.rpartition(".")
        transport = getattr(importlib.import_module(module_name), class_name)
        for attr, stub in vars(transport).items():
            if not (inspect.isclass(stub) and hasattr(stub, "_get_http_options")):
                continue
            hints = typing.get_type_hints(stub.__call__)
            request_type = _message_type(hints["request"])
            iam = request_type.DESCRIPTOR.full_name.startswith("google.iam.")
            owner = _IAM_SERVICE if iam else service
            for option in stub._get_http_options():
                key = (option["method"].upper(), option["uri"])
                if key in routes:
                    continue  # the IAM mixin is repeated in every transport
                pattern, fields = _compile(option["uri"])
                routes[key] = Route(
                    http_method=key[0],
                    template=option["uri"],
                    pattern=pattern,
                    fields=fields,
                    body=option.get("body"),
                    grpc_method=f"/{owner}/{attr.lstrip('_')}",
                    request_type=request_type,
                    response_type=_message_type(hints.get("return")),
                )
    return list(routes.values())


_ROUTES: list[Route] | None = None


def routes() -> list[Route]:
    """Every HTTP binding of the installed client's Pub/Sub API (read once)."""
    global _ROUTES
    if _ROUTES is None:
        _ROUTES = _load_routes()
    return _ROUTES


def match(http_method: str, raw_path: str) -> tuple[Route, dict[str, str]]:
    """The route for a request and its path variables (percent-decoded), or RestError
    NOT_FOUND for a method and path the API does not have (as Google answers)."""
    path = raw_path.split("?", 1)[0]
    for route in routes():
        found = route.pattern.match(path)
        if found is not None and route.http_method == http_method.upper():
            values = zip(route.fields, found.groups(), strict=True)
            return route, {field: unquote(value) for field, value in values}
    raise RestError(
        grpc.StatusCode.NOT_FOUND, f"the Pub/Sub API has no method {http_method} {path}"
    )
