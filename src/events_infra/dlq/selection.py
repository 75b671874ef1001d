"""Which dead letters a command acts on: by source subscription, attribute and age."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from events_infra.dlq.errors import DlqError
from events_infra.dlq.messages import DeadLetter
from events_infra.dlq.target import DlqTarget


@dataclass(frozen=True)
class Selection:
    sources: tuple[str, ...] = ()
    attributes: tuple[tuple[str, str], ...] = ()
    older_than_s: float | None = None
    """Only dead letters that have been in the DLQ longer than this."""
    newer_than_s: float | None = None
    """Only dead letters that have been in the DLQ less long than this."""

    def matches(self, letter: DeadLetter, now: datetime | None = None) -> bool:
        if self.sources and letter.source_subscription not in self.sources:
            return False
        if any(letter.attributes.get(k) != v for k, v in self.attributes):
            return False
        age = letter.age_seconds(now or datetime.now(UTC))
        if self.older_than_s is not None and age < self.older_than_s:
            return False
        return not (self.newer_than_s is not None and age > self.newer_than_s)

    @property
    def is_everything(self) -> bool:
        return self == Selection()

    def describe(self) -> dict[str, Any]:
        return {
            "sources": list(self.sources),
            "attributes": dict(self.attributes),
            "older_than_s": self.older_than_s,
            "newer_than_s": self.newer_than_s,
        }


def parse_selection(
    target: DlqTarget,
    sources: list[str] | None = None,
    attributes: list[str] | None = None,
    older_than: str | None = None,
    newer_than: str | None = None,
) -> Selection:
    """Validate the filter flags (none: every dead letter); unknown subscriptions and malformed
    values are DlqErrors."""
    from events_infra.stack_config.durations import parse_duration

    pairs = []
    for item in attributes or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise DlqError(f"--attr {item!r}: use KEY=VALUE, e.g. --attr event_type=trade.created")
        pairs.append((key, value))

    def age(flag: str, value: str | None) -> float | None:
        if value is None:
            return None
        try:
            return parse_duration(value)
        except ValueError as err:
            raise DlqError(f"{flag}: {err}") from None

    return Selection(
        sources=tuple(target.check_source(s) for s in sources or []),
        attributes=tuple(pairs),
        older_than_s=age("--older-than", older_than),
        newer_than_s=age("--newer-than", newer_than),
    )
