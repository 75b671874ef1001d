"""The cutover from direct publishing: old-path messages (no event_id attribute, the type only in
the body, a body perhaps not JSON) are handled in the consumer's compatibility mode, never
dead-lettered for their format; hostile bodies and attributes stay that message's failure."""

from __future__ import annotations

import json
import queue
import uuid
from pathlib import Path
from typing import Any

import pytest
from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.subscriber.message import Message

from events_infra.consumer import LegacyMessages, ReceivedEvent, UndecodableEvent
from events_infra.consumer.event import decode
from tests.support.consumer_support import (
    ConsumerThread,
    effects,
    prepare_service_db,
    publish_events,
    record_effect,
)
from tests.support.dlq_support import DlqStack, make_stack
from tests.support.relay_support import wait_until

SUB = "orders-sub"


def received(data: bytes, message_id: str = "m-1", **attributes: str) -> Message:
    """A subscriber Message as the client library builds it from a pull response."""
    pb = pubsub_v1.types.PubsubMessage(data=data, attributes=attributes, message_id=message_id)
    return Message(pb._pb, "ack-1", 1, queue.Queue())


def test_an_old_path_message_gets_a_stable_id_from_its_message_id() -> None:
    legacy = LegacyMessages()
    body = json.dumps({"event_type": "trade.created", "trade": 7}).encode()
    first = decode(received(body, "41"), legacy)
    again = decode(received(body, "41"), legacy)  # a redelivery: the same message id
    other = decode(received(body, "42"), legacy)
    assert first.legacy and first.event_id == again.event_id != other.event_id
    assert first.event_type == "trade.created" and first.payload == {
        "event_type": "trade.created",
        "trade": 7,
    }


def test_an_id_the_old_path_put_in_its_body_is_the_event_id() -> None:
    """So the old path's copy and the outbox's copy of one event (Event(event_id=...)) dedupe
    during a dual-publish rollout."""
    known = uuid.uuid4()
    legacy = LegacyMessages(id_field="id")
    event = decode(received(json.dumps({"id": str(known)}).encode()), legacy)
    assert event.event_id == known
    hashed = decode(received(json.dumps({"id": 12345}).encode(), "a"), legacy)
    assert (
        hashed.event_id
        == decode(received(json.dumps({"id": 12345}).encode(), "b"), legacy).event_id
    )


def test_a_raw_body_is_handed_over_as_bytes_for_old_path_messages_only() -> None:
    raw = b"\x00not json"
    assert decode(received(raw), LegacyMessages()).payload == raw
    with pytest.raises(UndecodableEvent, match="no valid event_id"):
        decode(received(raw))  # compatibility mode off
    with pytest.raises(UndecodableEvent, match="body is not JSON"):  # a new-path event
        decode(received(raw, event_id=str(uuid.uuid4())), LegacyMessages())


def test_a_broken_event_id_is_not_taken_for_an_old_path_message() -> None:
    """Old publishers send no event_id; one that is there but not a UUID is a broken new-path
    publisher, dead-lettered as before even in compatibility mode."""
    with pytest.raises(UndecodableEvent, match="no valid event_id"):
        decode(received(b"{}", event_id="abc"), LegacyMessages())


def test_a_replayed_old_path_copy_takes_the_dead_letters_id() -> None:
    """Replaying one dead letter twice gives two copies with new message ids; both carry
    replayed_from, so they dedupe."""
    legacy = LegacyMessages()
    first = decode(received(b"{}", "copy-1", replayed_from="letter-9"), legacy)
    second = decode(received(b"{}", "copy-2", replayed_from="letter-9"), legacy)
    assert first.event_id == second.event_id and first.replayed


@pytest.mark.parametrize(
    ("data", "attributes", "reason"),
    [
        (b"[" * 100_000, {"event_id": str(uuid.uuid4())}, "body is not JSON"),
        (b"{}", {"event_id": "not-a-uuid"}, "no valid event_id"),
    ],
    ids=["nested-body", "bad-id"],
)
def test_hostile_messages_are_undecodable_not_a_crash(
    data: bytes, attributes: dict[str, str], reason: str
) -> None:
    with pytest.raises(UndecodableEvent, match=reason):
        decode(received(data, **attributes))


def test_a_version_that_only_looks_like_digits_is_version_1() -> None:
    event = decode(received(b"{}", event_id=str(uuid.uuid4()), event_version="²"))
    assert event.event_version == 1


@pytest.fixture
def stack(pubsub: str, tmp_path: Path) -> DlqStack:
    return make_stack(tmp_path)


def test_old_and_new_path_messages_are_both_processed_none_dead_lettered(
    stack: DlqStack, database_url: str
) -> None:
    prepare_service_db(database_url)
    [new_id] = publish_events(stack.publisher, stack.topic, 1)
    for body in (json.dumps({"event_type": "trade.created", "n": 1}).encode(), b"plain text"):
        stack.publisher.publish(stack.topic, body).result(timeout=30)
    seen: list[ReceivedEvent] = []

    def handler(event: ReceivedEvent, conn: Any) -> None:
        seen.append(event)
        if isinstance(event.payload, bytes):  # an old-path body that is not JSON
            conn.execute("INSERT INTO effects (event_id) VALUES (%s)", (event.event_id,))
        else:
            record_effect(event, conn)

    with ConsumerThread(stack.subscription(SUB), handler, database_url, legacy=LegacyMessages()):
        assert wait_until(lambda: len(effects(database_url)) == 3, seconds=30)
    assert sorted(e.legacy for e in seen) == [False, True, True]
    assert str(next(e.event_id for e in seen if not e.legacy)) == new_id
    assert {e.event_type for e in seen if e.legacy and isinstance(e.payload, dict)} == {
        "trade.created"
    }
    assert stack.pull(stack.dlq_subscription, timeout=2.0) == []  # nothing dead-lettered
