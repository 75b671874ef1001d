"""The strict proxy: each production rule, shown accepted by the bare emulator and enforced by
the proxy in front of it (the same emulator, so only the proxy differs)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.api_core import exceptions as gexc
from google.pubsub_v1 import PublisherClient, SubscriberClient
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport
from google.pubsub_v1.types import PubsubMessage

from events_infra.local.proxy.control import ProxyControl
from events_infra.local.proxy.server import StrictProxy

NO_RETRY: Any = None


@dataclass
class Endpoint:
    """GAPIC clients bound to one address (no retries: each call is one RPC)."""

    publisher: PublisherClient
    subscriber: SubscriberClient

    @classmethod
    def at(cls, address: str) -> Endpoint:
        options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
        return cls(
            PublisherClient(
                transport=PublisherGrpcTransport(
                    channel=grpc.insecure_channel(address, options=options)
                )
            ),
            SubscriberClient(
                transport=SubscriberGrpcTransport(
                    channel=grpc.insecure_channel(address, options=options)
                )
            ),
        )

    def publish(self, topic: str, messages: list[PubsubMessage]) -> list[str]:
        reply = self.publisher.publish(topic=topic, messages=messages, retry=NO_RETRY, timeout=30)
        return list(reply.message_ids)

    def pull(self, subscription: str, max_messages: int = 100) -> list[Any]:
        """One pull; an empty answer after 2 s (the emulator holds a pull open while empty)."""
        try:
            reply = self.subscriber.pull(
                subscription=subscription, max_messages=max_messages, retry=NO_RETRY, timeout=2
            )
        except gexc.DeadlineExceeded:
            return []
        return list(reply.received_messages)


@pytest.fixture
def bare(bare_emulator: str) -> Endpoint:
    return Endpoint.at(bare_emulator)


@pytest.fixture
def strict(pubsub: str, strict_proxy: ProxyControl) -> Endpoint:
    return Endpoint.at(pubsub)


@pytest.fixture
def topic(bare: Endpoint) -> str:
    """A fresh topic (created on the emulator itself; both endpoints see it)."""
    name = f"projects/proxy-{uuid.uuid4().hex[:10]}/topics/events"
    bare.publisher.create_topic(name=name)
    return name


def subscription_on(
    endpoint: Endpoint, topic: str, filter_text: str = "", ack_deadline: int = 30
) -> str:
    name = topic.replace("/topics/events", f"/subscriptions/s-{uuid.uuid4().hex[:8]}")
    endpoint.subscriber.create_subscription(
        request={
            "name": name,
            "topic": topic,
            "filter": filter_text,
            "ack_deadline_seconds": ack_deadline,
        }
    )
    return name


def msg(data: bytes = b"x", key: str = "", **attributes: str) -> PubsubMessage:
    return PubsubMessage(data=data, ordering_key=key, attributes=attributes)


BAD_REQUESTS = {
    "mixed ordering keys": ([msg(key="a"), msg(key="b")], "same ordering key"),
    "a keyed and an unkeyed message": ([msg(key="a"), msg()], "same ordering key"),
    "1,001 messages": ([msg() for _ in range(1001)], "the limit is 1000"),
    "over 10 MB": ([msg(b"x" * 5_100_000) for _ in range(2)], "limit is 10000000"),
    "101 attributes": ([msg(**{f"k{i}": "v" for i in range(101)})], "limit is 100"),
    "a 257-byte key": ([msg(**{"k" * 257: "v"})], "over 256 bytes"),
    "a 1,025-byte value": ([msg(k="v" * 1025)], "over 1024 bytes"),
    "a goog key": ([msg(googlish="v")], "reserved by Google"),
    "no data and no attributes": ([msg(b"")], "non-empty data or at least one attribute"),
}


EMULATOR_REFUSES = {"1,001 messages", "no data and no attributes"}
"""Rules the emulator in use enforces itself; the proxy enforces every rule regardless."""


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_publish_rules_emulator_accepts_proxy_refuses(
    case: str, bare: Endpoint, strict: Endpoint, topic: str
) -> None:
    messages, why = BAD_REQUESTS[case]
    try:
        accepted = len(bare.publish(topic, messages)) == len(messages)
    except gexc.InvalidArgument:
        accepted = False
    assert accepted is (case not in EMULATOR_REFUSES)  # where the emulator is lenient
    with pytest.raises(gexc.InvalidArgument, match=why):
        strict.publish(topic, messages)


def test_valid_requests_pass_at_the_limits(strict: Endpoint, topic: str) -> None:
    assert len(strict.publish(topic, [msg(key="k") for _ in range(1000)])) == 1000
    assert len(strict.publish(topic, [msg(**{f"k{i}": "v" * 1024 for i in range(100)})])) == 1
    assert len(strict.publish(topic, [msg(b"x" * 3_000_000) for _ in range(3)])) == 3


def test_unparsable_or_long_filter_is_refused_at_create(
    bare: Endpoint, strict: Endpoint, topic: str
) -> None:
    subscription_on(bare, topic, 'attributes.x = = "1"')  # the emulator takes anything
    for text in ('attributes.x = = "1"', f'attributes.x = "{"y" * 250}"', "attributes:a OR"):
        with pytest.raises(gexc.InvalidArgument, match="Invalid filter"):
            subscription_on(strict, topic, text)


def test_filter_cannot_be_changed_after_create(strict: Endpoint, topic: str) -> None:
    name = subscription_on(strict, topic, "attributes:a")
    with pytest.raises(gexc.InvalidArgument, match="cannot be changed"):
        strict.subscriber.update_subscription(
            request={
                "subscription": {"name": name, "topic": topic, "filter": "attributes:b"},
                "update_mask": {"paths": ["filter"]},
            }
        )


def test_pull_applies_the_filter_and_acks_the_rest(
    bare: Endpoint, strict: Endpoint, topic: str, strict_proxy: ProxyControl
) -> None:
    filtered = subscription_on(strict, topic, 'attributes.kind = "keep"')
    twin = subscription_on(bare, topic, 'attributes.kind = "keep"')
    bare.publish(topic, [msg(kind="drop"), msg(kind="keep"), msg(n="1"), msg(kind="keep")])

    assert len(drain(bare, twin)) == 4  # the bare emulator ignores the filter
    delivered: list[Any] = []
    for _ in range(20):  # pull without acking
        delivered += strict.pull(filtered)
        if len(delivered) >= 2:
            break
    assert [m.message.attributes["kind"] for m in delivered] == ["keep", "keep"]
    assert strict_proxy.stats()["stats"]["filtered_out"] == 2
    # the two that did not match were acknowledged on the emulator: only the two delivered,
    # released now, are left there
    strict.subscriber.modify_ack_deadline(
        subscription=filtered, ack_ids=[m.ack_id for m in delivered], ack_deadline_seconds=0
    )
    assert sorted(m.message.attributes["kind"] for m in drain(bare, filtered)) == ["keep", "keep"]


def test_streaming_pull_applies_the_filter(strict: Endpoint, topic: str, pubsub: str) -> None:
    from google.cloud import pubsub_v1

    name = subscription_on(strict, topic, 'hasPrefix(attributes.region, "eu-")')
    strict.publish(topic, [msg(region=r) for r in ("eu-west", "us-east", "eu-north", "ap")])
    got: list[str] = []
    done = threading.Event()

    def handle(message: Any) -> None:
        got.append(message.attributes["region"])
        message.ack()
        if len(got) >= 2:
            done.set()

    subscriber = pubsub_v1.SubscriberClient()
    future = subscriber.subscribe(name, handle)
    try:
        assert done.wait(20)
        time.sleep(1.0)  # anything unfiltered would arrive meanwhile
    finally:
        future.cancel()
        subscriber.close()
    assert sorted(got) == ["eu-north", "eu-west"]


def test_partial_pulls_return_fewer_or_none_but_lose_nothing(
    bare: Endpoint, strict: Endpoint, topic: str, strict_proxy: ProxyControl
) -> None:
    name = subscription_on(strict, topic)
    twin = subscription_on(bare, topic)
    bare.publish(topic, [msg(n=str(i)) for i in range(50)])
    assert len(bare.pull(twin, max_messages=50)) == 50  # the emulator always answers in full
    strict_proxy.partial_pulls(1.0, seed=3)
    sizes: list[int] = []
    seen: set[str] = set()
    for _ in range(200):
        batch = strict.pull(name, max_messages=20)
        sizes.append(len(batch))
        if batch:
            strict.subscriber.acknowledge(subscription=name, ack_ids=[m.ack_id for m in batch])
        seen |= {m.message.attributes["n"] for m in batch}
        if len(seen) == 50:
            break
    assert len(seen) == 50
    assert 0 in sizes[:-1]  # an empty answer while messages were still there
    assert all(size < 20 for size in sizes)  # never a full pull while 50 were available
    assert strict_proxy.stats()["stats"]["partial_pulls"] == len(sizes)


def test_streaming_pull_responses_are_split_and_nothing_is_lost(
    strict: Endpoint, topic: str, strict_proxy: ProxyControl
) -> None:
    from google.cloud import pubsub_v1

    name = subscription_on(strict, topic)
    strict.publish(topic, [msg(n=str(i)) for i in range(100)])
    strict_proxy.partial_pulls(1.0, seed=2)
    got: set[str] = set()
    done = threading.Event()

    def handle(message: Any) -> None:
        got.add(message.attributes["n"])
        message.ack()
        if len(got) == 100:
            done.set()

    subscriber = pubsub_v1.SubscriberClient()
    future = subscriber.subscribe(name, handle)
    try:
        assert done.wait(30)
    finally:
        future.cancel()
        subscriber.close()
    assert got == {str(i) for i in range(100)}
    assert strict_proxy.stats()["stats"]["partial_pulls"] >= 1  # some response was split


def test_partial_pulls_are_reproducible_with_a_seed(
    strict: Endpoint, topic: str, strict_proxy: ProxyControl
) -> None:
    def sizes() -> list[int]:
        name = subscription_on(strict, topic)
        strict.publish(topic, [msg(n=str(i)) for i in range(200)])
        strict_proxy.partial_pulls(0.5, seed=11)
        out = [len(strict.pull(name, max_messages=10)) for _ in range(12)]
        strict_proxy.partial_pulls(0.0)
        return out

    first, second = sizes(), sizes()
    assert first == second and set(first) != {10}


def test_injected_faults_fail_the_next_n_calls(
    strict: Endpoint, topic: str, strict_proxy: ProxyControl
) -> None:
    strict_proxy.fail("Publish", "UNAVAILABLE", count=2)
    for _ in range(2):
        with pytest.raises(gexc.ServiceUnavailable, match="injected"):
            strict.publish(topic, [msg()])
    assert len(strict.publish(topic, [msg()])) == 1
    name = subscription_on(strict, topic)
    strict_proxy.fail("Pull", "FAILED_PRECONDITION")
    with pytest.raises(gexc.FailedPrecondition):
        strict.pull(name)
    strict_proxy.fail("Pull", "RESOURCE_EXHAUSTED")
    with pytest.raises(gexc.ResourceExhausted):
        strict.pull(name)
    assert strict_proxy.stats()["stats"]["faults_injected.Publish"] == 2
    with pytest.raises(grpc.RpcError, match="unknown status code"):
        strict_proxy.fail("Pull", "NOT_A_CODE")


@pytest.fixture
def proxy_on_proxy(pubsub: str) -> Iterator[StrictProxy]:
    """A second strict proxy whose backend is the session's proxy: a backend that filters."""
    outer = StrictProxy(pubsub)
    outer.start()
    try:
        yield outer
    finally:
        outer.stop()


def test_a_backend_that_filters_is_detected_and_not_filtered_twice(
    proxy_on_proxy: StrictProxy, topic: str, strict_proxy: ProxyControl
) -> None:
    assert proxy_on_proxy.backend_filters is True
    assert strict_proxy.stats()["backend_filters"] is False  # the bare emulator does not
    outer = Endpoint.at(proxy_on_proxy.address)
    name = subscription_on(outer, topic, "attributes:keep")
    outer.publish(topic, [msg(keep="1"), msg(other="1")])
    assert [dict(m.message.attributes) for m in drain(outer, name)] == [{"keep": "1"}]
    assert proxy_on_proxy.state.stats["filtered_out"] == 0  # the inner proxy did it


def drain(endpoint: Endpoint, subscription: str, seconds: float = 3.0) -> list[Any]:
    """Pull and ack until nothing came for two pulls in a row (bounded in time)."""
    got: list[Any] = []
    deadline = time.monotonic() + seconds * 5
    empty = 0
    while empty < 2 and time.monotonic() < deadline:
        batch = endpoint.pull(subscription)
        if not batch:
            empty += 1
            continue
        empty = 0
        endpoint.subscriber.acknowledge(
            subscription=subscription, ack_ids=[m.ack_id for m in batch]
        )
        got += batch
    return got


def test_a_late_ack_is_dropped_and_the_message_comes_back(
    bare: Endpoint, strict: Endpoint, topic: str, strict_proxy: ProxyControl
) -> None:
    """The emulator honours an ack sent after the 10 s deadline; production ignores it and
    redelivers. A deadline extended in time keeps the ack good."""
    late = subscription_on(strict, topic, ack_deadline=10)
    twin = subscription_on(bare, topic, ack_deadline=10)
    kept = subscription_on(strict, topic, ack_deadline=10)
    bare.publish(topic, [msg(n="1")])
    [on_bare] = bare.pull(twin)
    [on_late] = strict.pull(late)
    [on_kept] = strict.pull(kept)
    for _ in range(2):  # extend `kept` while time passes
        time.sleep(5.5)
        strict.subscriber.modify_ack_deadline(
            subscription=kept, ack_ids=[on_kept.ack_id], ack_deadline_seconds=10
        )
    bare.subscriber.acknowledge(subscription=twin, ack_ids=[on_bare.ack_id])
    strict.subscriber.acknowledge(subscription=late, ack_ids=[on_late.ack_id])
    strict.subscriber.acknowledge(subscription=kept, ack_ids=[on_kept.ack_id])

    assert drain(bare, twin) == []  # the emulator took the late ack
    assert [m.message.attributes["n"] for m in drain(strict, late)] == ["1"]  # redelivered
    assert drain(strict, kept) == []
    assert strict_proxy.stats()["stats"]["late_acks_dropped"] == 1
