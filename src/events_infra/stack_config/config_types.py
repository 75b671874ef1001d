"""Value types and checks shared by every part of the stack config model.

Each check raises a pydantic error whose message states the bad value and what is allowed, so
`topology.parse_topology` can prefix it with the config key and show it as one line.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict
from pydantic_core import PydanticCustomError

from events_infra.stack_config import limits
from events_infra.stack_config.durations import gcp_duration, human_duration, parse_duration

MIN_RETENTION_S = 600.0
MAX_RETENTION_S = 31 * 86400.0

PUBSUB_ID = re.compile(r"^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$")
_PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_KMS_KEY = re.compile(r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def fail(code: str, message: str, **ctx: Any) -> PydanticCustomError:
    return PydanticCustomError(code, message, ctx)


def between(lo: float, hi: float, unit: str = "", why: str = "") -> AfterValidator:
    """A range check whose message always states the allowed range (and why it is that range)."""

    def fmt(v: float) -> str:
        if unit != "duration":
            return f"{v:g}"
        # Short ranges read best in seconds (as GCP shows them), long ones in days.
        return gcp_duration(v) if hi <= 3600 else human_duration(v)

    def check(value: float) -> float:
        if not lo <= value <= hi:
            raise fail(
                "out_of_range",
                "{value} is outside the allowed range {lo}–{hi}{why}",
                value=fmt(value),
                lo=fmt(lo),
                hi=fmt(hi),
                why=f" ({why})" if why else "",
            )
        return value

    return AfterValidator(check)


def duration(value: Any) -> float:
    try:
        return parse_duration(value)
    except ValueError as err:
        raise fail("duration", "{msg}", msg=str(err)) from None


def whole_seconds(value: float) -> int:
    if not float(value).is_integer():
        raise fail(
            "whole_seconds", "{value}s must be a whole number of seconds", value=f"{value:g}"
        )
    return int(value)


def is_pubsub_id(value: str) -> bool:
    return bool(PUBSUB_ID.match(value)) and not value.lower().startswith("goog")


def pubsub_id(value: str) -> str:
    if not is_pubsub_id(value):
        raise fail(
            "pubsub_id",
            "{value} is not a valid Pub/Sub name: 3–255 characters, starting with a letter, "
            "only letters, digits and - _ . ~ + %, and not starting with 'goog'",
            value=repr(value),
        )
    return value


def project_id(value: str) -> str:
    if not _PROJECT_ID.match(value):
        raise fail(
            "project_id",
            "{value} is not a valid GCP project id: 6–30 lowercase letters, digits or hyphens, "
            "starting with a letter and not ending with a hyphen",
            value=repr(value),
        )
    return value


def labels_check(value: dict[str, str]) -> dict[str, str]:
    for key, val in value.items():
        if not _LABEL_KEY.match(key):
            raise fail(
                "label_key",
                "label key {key} is invalid: 1–63 lowercase letters, digits, _ or -, "
                "starting with a letter",
                key=repr(key),
            )
        if not _LABEL_VALUE.match(val):
            raise fail(
                "label_value",
                "label {key}={val}: values are 0–63 lowercase letters, digits, _ or -",
                key=repr(key),
                val=repr(val),
            )
    return value


def https_url(value: str) -> str:
    if not value.startswith("https://") or len(value) <= len("https://"):
        raise fail(
            "push_endpoint",
            "{value} is not an https:// URL (GCP pushes only to https)",
            value=repr(value),
        )
    return value


def email(value: str) -> str:
    if not _EMAIL.match(value):
        raise fail("email", "{value} is not an email address", value=repr(value))
    return value


def matches(pattern: re.Pattern[str], what: str) -> AfterValidator:
    """A pattern check whose message says what the value should have been."""

    def check(value: str) -> str:
        if not pattern.match(value):
            raise fail("pattern", "{value} is not {what}", value=repr(value), what=what)
        return value

    return AfterValidator(check)


KmsKey = Annotated[
    str, matches(_KMS_KEY, "a KMS key name (projects/P/locations/L/keyRings/R/cryptoKeys/K)")
]
Seconds = Annotated[float, BeforeValidator(duration)]
PubSubId = Annotated[str, AfterValidator(pubsub_id)]
_SUBSCRIPTION_PATH = re.compile(
    r"^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/subscriptions/[A-Za-z][\w.~+%-]{2,254}$"
)
SubscriptionRef = Annotated[
    str,
    matches(
        re.compile(_SUBSCRIPTION_PATH.pattern + r"|^[A-Za-z][\w.~+%-]{2,254}$"),
        "a subscription name (this project) or projects/PROJECT/subscriptions/NAME",
    ),
]
"""A subscription in the stack's project by name, or anywhere by its full path."""
Labels = Annotated[dict[str, str], AfterValidator(labels_check)]
Attempts = Annotated[
    int,
    between(
        limits.MIN_DELIVERY_ATTEMPTS,
        limits.MAX_DELIVERY_ATTEMPTS,
        why="GCP's limit on delivery attempts before dead-lettering",
    ),
]
Backoff = Annotated[
    Seconds,
    between(
        limits.MIN_BACKOFF_S,
        limits.MAX_BACKOFF_S,
        "duration",
        "the policy pack's retry backoff range; GCP's own is 0s–600s",
    ),
]
AckDeadline = Annotated[
    Seconds,
    between(10, 600, "duration", "GCP's ack deadline limit"),
    AfterValidator(whole_seconds),
]
Retention = Annotated[
    Seconds,
    between(MIN_RETENTION_S, MAX_RETENTION_S, "duration", "GCP's message retention limit"),
]


class Strict(BaseModel):
    """Unknown keys are errors: a typo in a stack file must not pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)
