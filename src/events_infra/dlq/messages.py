"""A dead letter as on-call sees it: where it failed, how often, when, and what it carries."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from events_infra.pubsub.attributes import (
    BOOKKEEPING,
    DELIVERY_COUNT,
    EVENT_ID,
    ORIGINAL_PUBLISH_TIME,
    REPLAY_COUNT,
    REPLAY_TARGET,
    REPLAYED_FROM,
    SOURCE_PROJECT,
    SOURCE_SUBSCRIPTION,
)

__all__ = [  # the attribute names are re-exported for the DLQ tools and their tests
    "BOOKKEEPING",
    "DELIVERY_COUNT",
    "ORIGINAL_PUBLISH_TIME",
    "REPLAYED_FROM",
    "REPLAY_COUNT",
    "SOURCE_PROJECT",
    "SOURCE_SUBSCRIPTION",
    "DeadLetter",
    "data_from_record",
    "replay_attributes",
]


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    ack_id: str
    data: bytes
    attributes: dict[str, str]
    ordering_key: str
    dead_lettered_at: datetime

    @classmethod
    def from_received(cls, received: Any) -> DeadLetter:
        """From a pulled `ReceivedMessage`. Read through the raw protobuf underneath the
        client's wrapper (`_pb`) when there is one: the wrapper converts field by field and
        costs more than the rest of a replay's per-letter work together."""
        received = getattr(received, "_pb", received)
        message = received.message
        published = message.publish_time
        if not isinstance(published, datetime):
            published = published.ToDatetime(tzinfo=UTC)
        if published.tzinfo is None:
            published = published.replace(tzinfo=UTC)
        return cls(
            message_id=message.message_id,
            ack_id=received.ack_id,
            data=bytes(message.data),
            attributes=dict(message.attributes),
            ordering_key=message.ordering_key,
            dead_lettered_at=published,
        )

    @property
    def source_subscription(self) -> str | None:
        return self.attributes.get(SOURCE_SUBSCRIPTION)

    @property
    def delivery_count(self) -> int | None:
        return count_attribute(self.attributes.get(DELIVERY_COUNT))

    @property
    def original_publish_time(self) -> str | None:
        return self.attributes.get(ORIGINAL_PUBLISH_TIME)

    @property
    def replay_count(self) -> int:
        return count_attribute(self.attributes.get(REPLAY_COUNT)) or 0

    @property
    def fingerprint(self) -> bytes:
        """Same for two dead letters of one original message (Pub/Sub may dead-letter a message
        more than once, each time under a new message id): the relay's `event_id` when there is
        one, else the source, original publish time, payload and attributes.

        16 bytes of SHA-256 (collisions are out of reach for any DLQ), kept as bytes: a replay
        holds one per letter it has replayed, and a 64-character hex string costs ~70 bytes
        more each (bench/dlq_replay.py measures memory at 200,000 letters)."""
        if EVENT_ID in self.attributes:
            key = f"{self.source_subscription}|event:{self.attributes[EVENT_ID]}"
            return hashlib.sha256(key.encode()).digest()[:16]
        stable = {k: v for k, v in self.attributes.items() if k != DELIVERY_COUNT}
        digest = hashlib.sha256()
        digest.update(json.dumps(stable, sort_keys=True).encode())
        digest.update(self.ordering_key.encode() + b"\0" + self.data)
        return digest.digest()[:16]

    def age_seconds(self, now: datetime | None = None) -> float:
        return ((now or datetime.now(UTC)) - self.dead_lettered_at).total_seconds()

    def payload_view(self) -> tuple[str, Any]:
        """("json", parsed) when the payload is JSON, else ("base64", text): safe to print."""
        try:
            return "json", json.loads(self.data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return "base64", base64.b64encode(self.data).decode()

    def to_record(self, exact: bool = False) -> dict[str, Any]:
        """The JSON form used by `inspect --json` and `export` (and read back by
        `replay --from-file`). `exact`: the payload always as base64 — the bytes as they were
        (a JSON payload read back is re-serialised, not byte-identical) and no parse."""
        if exact:
            kind, payload = "base64", base64.b64encode(self.data).decode()
        else:
            kind, payload = self.payload_view()
        record: dict[str, Any] = {
            "message_id": self.message_id,
            "source_subscription": self.source_subscription,
            "delivery_count": self.delivery_count,
            "original_publish_time": self.original_publish_time,
            "dead_lettered_at": self.dead_lettered_at.isoformat(),
            REPLAY_COUNT: self.replay_count,
            "ordering_key": self.ordering_key,
            "attributes": self.attributes,
        }
        record["json" if kind == "json" else "data_base64"] = payload
        return record


def count_attribute(value: object) -> int | None:
    """A counter attribute (or export field) as written by anyone with publish rights: only
    ASCII digits count ("²".isdigit() is True and int("²") fails), at most 9 of them; anything
    else is None, never an exception that would stop a scan of the whole DLQ."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 9:
        return int(value)
    return None


def replay_attributes(
    letter_attributes: dict[str, str], message_id: str, target: str | None, replay_count: int
) -> dict[str, str]:
    """The copy's attributes: the original's, minus Pub/Sub's dead-letter bookkeeping, plus the
    replay target (unless broadcasting), the dead letter's id and the new replay count."""
    attributes = {k: v for k, v in letter_attributes.items() if k not in BOOKKEEPING}
    attributes.pop(REPLAY_TARGET, None)
    if target:
        attributes[REPLAY_TARGET] = target
    attributes[REPLAYED_FROM] = message_id
    attributes[REPLAY_COUNT] = str(replay_count)
    return attributes


def data_from_record(record: dict[str, Any]) -> bytes:
    """The payload of an exported (possibly edited) record."""
    if "json" in record:
        return json.dumps(record["json"], separators=(",", ":")).encode()
    if "data_base64" in record:
        return base64.b64decode(record["data_base64"])
    raise ValueError("record has neither 'json' nor 'data_base64'")
