"""The `alerting` section of a stack: when on-call is paged about dead letters, and how.

The DLQ backlog alert is always on (the audit's "DLQ holds more than 100 messages"); the
other alerts and the notification channels are optional.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, model_validator

from events_infra.stack_config import limits
from events_infra.stack_config.config_types import (
    Labels,
    Seconds,
    Strict,
    between,
    email,
    fail,
    https_url,
    matches,
    whole_seconds,
)
from events_infra.stack_config.durations import gcp_duration

Severity = Literal["CRITICAL", "ERROR", "WARNING"]
CHANNEL_TYPES = ("email", "pagerduty", "webhook")
_CHANNEL_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_CHANNEL_ID = re.compile(r"^projects/[^/]+/notificationChannels/[0-9]+$")
SECRET_PLACEHOLDER = "<secret>"
"""What a `secure:` value reads as outside the Pulumi engine (the CLI never decrypts)."""


def _non_negative(value: float) -> float:
    if value < 0:
        raise fail("negative", "{value} is negative; thresholds are 0 or more", value=f"{value:g}")
    return value


Threshold = Annotated[float, AfterValidator(_non_negative)]


def _whole_minutes(value: float) -> float:
    if value % limits.ALERT_DURATION_STEP_S:
        raise fail(
            "whole_minutes",
            "{value} is not a whole number of minutes (Cloud Monitoring accepts only multiples "
            "of 60s here, e.g. 60s, 120s, 5m; it would fail at `pulumi up`)",
            value=gcp_duration(value),
        )
    return value


Window = Annotated[
    Seconds,
    between(0, 86400, "duration", "Cloud Monitoring's limit"),
    AfterValidator(_whole_minutes),
]
"""A condition's `duration`: whole minutes."""
MissingDataWindow = Annotated[
    Seconds,
    between(60, 86400, "duration", "a condition that closes when data stops arriving needs 60s+"),
    AfterValidator(_whole_minutes),
]
"""The `duration` of a condition that sets `evaluation_missing_data`: Cloud Monitoring refuses
that control below 60 s ("the value of the `duration` field must be greater than or equal to 60
seconds", monitoring_v3 types/alert.py, MetricThreshold.evaluation_missing_data)."""
AutoClose = Annotated[Seconds, between(0, 86400, "duration", "Cloud Monitoring's limit")]
Alignment = Annotated[
    Seconds,
    between(60, 86400, "duration", "Cloud Monitoring's alignment limit"),
    AfterValidator(whole_seconds),
]


class BacklogAlert(Strict):
    """Dead-letter subscription's undelivered messages above `threshold` for `duration`.

    Aligned with ALIGN_MAX over `alignment_period`: a backlog that stays up for the whole
    `duration` pages; a spike shorter than `duration` does not. Missing data keeps the
    incident's current state (a metric gap neither opens nor closes an incident).
    """

    threshold: Threshold = 100
    duration: Window = 300.0
    alignment_period: Alignment = 60
    severity: Severity = "CRITICAL"
    auto_close: AutoClose = 1800.0


class DeadLetterRateAlert(Strict):
    """Messages dead-lettered per source subscription above `threshold` per alignment period."""

    threshold: Threshold = 0
    duration: MissingDataWindow = 60.0
    """It closes its incident when dead-lettering stops (missing data counts as inactive)."""
    alignment_period: Alignment = 300
    severity: Severity = "ERROR"
    auto_close: AutoClose = 1800.0


class OldestUnackedAlert(Strict):
    """A consumer subscription's oldest unacknowledged message older than `threshold`."""

    threshold: Annotated[Seconds, between(60, 31 * 86400, "duration", "a useful age")] = 3600.0
    duration: Window = 600.0
    alignment_period: Alignment = 60
    severity: Severity = "WARNING"
    auto_close: AutoClose = 1800.0


class RetentionAlert(Strict):
    """Dead letters older than `fraction` of the dead-letter retention: about to be lost."""

    fraction: Annotated[float, between(0.1, 0.99, why="a fraction of the retention")] = 0.75
    alignment_period: Alignment = 60
    severity: Severity = "CRITICAL"
    auto_close: AutoClose = 1800.0


class StuckOutboxAlert(Strict):
    """Events wait in the outbox: the oldest unpublished one is older than `threshold` for
    `duration` (the relay is down, failing, or behind), or no relay has reported for
    `silent_after`. Only for stacks that deploy the relay (`events-infra:relay`)."""

    threshold: Annotated[Seconds, between(60, 86400, "duration", "a useful age")] = 600.0
    duration: Window = 300.0
    alignment_period: Alignment = 60
    silent_after: Annotated[
        Seconds,
        between(120, 86400, "duration", "Cloud Monitoring's absence window"),
        AfterValidator(_whole_minutes),
    ] = 600.0
    severity: Severity = "CRITICAL"
    auto_close: AutoClose = 1800.0


def _channel_type(value: Any) -> Any:
    if isinstance(value, dict) and value.get("type") not in CHANNEL_TYPES:
        raise fail(
            "channel_kind",
            "unknown channel type {type}: use one of {types}",
            type=repr(value.get("type")),
            types=", ".join(CHANNEL_TYPES),
        )
    return value


ChannelName = Annotated[
    str, matches(_CHANNEL_NAME, "a channel name (lowercase letters, digits, hyphens)")
]


class EmailChannel(Strict):
    type: Literal["email"]
    name: ChannelName
    address: Annotated[str, AfterValidator(email)]


class PagerDutyChannel(Strict):
    type: Literal["pagerduty"]
    name: ChannelName
    service_key: SecretStr
    """Must come from a `secure:` value (`pulumi config set --secret --path ...`)."""


class WebhookChannel(Strict):
    """Cloud Monitoring's `webhook_basicauth`: without credentials the receiver cannot tell
    Monitoring's alerts from anyone else's POSTs (a forged "resolved", a flood), so a webhook
    always has them."""

    type: Literal["webhook"]
    name: ChannelName
    url: Annotated[str, AfterValidator(https_url)]
    username: Annotated[str, Field(min_length=1, max_length=100)]
    password: SecretStr
    """Must come from a `secure:` value (`pulumi config set --secret --path ...`)."""


Channel = Annotated[
    EmailChannel | PagerDutyChannel | WebhookChannel,
    Field(discriminator="type"),
    BeforeValidator(_channel_type),
]


ChannelId = Annotated[
    str,
    matches(_CHANNEL_ID, "a notification channel id (projects/P/notificationChannels/NUMBER)"),
]


class AlertingConfig(Strict):
    """Alert policies, their notification channels, and the stack's dashboard."""

    dlq_backlog: BacklogAlert = Field(default_factory=BacklogAlert)
    dead_letter_rate: DeadLetterRateAlert | None = None
    oldest_unacked: OldestUnackedAlert | None = None
    dlq_retention: RetentionAlert | None = None
    stuck_outbox: StuckOutboxAlert | None = Field(default_factory=StuckOutboxAlert)
    channels: list[Channel] = Field(default_factory=list)
    existing_channels: list[ChannelId] = Field(default_factory=list)
    user_labels: Labels = Field(default_factory=dict)
    dashboard: bool = True

    @model_validator(mode="after")
    def _unique_channel_names(self) -> AlertingConfig:
        names = [c.name for c in self.channels]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise fail(
                "duplicate_channel",
                "channel names must be unique; used twice: {names}",
                names=", ".join(duplicates),
            )
        return self
