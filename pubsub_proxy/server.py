"""The strict Pub/Sub proxy: a loopback gRPC server in front of the emulator.

Every Publisher, Subscriber, IAM and Schema call is forwarded to the emulator as raw bytes. On
top, the proxy applies the production rules the emulator skips:

- Publish requests that break Pub/Sub's limits (one ordering key per request, 1,000 messages,
  10 MB, attribute limits) are refused with INVALID_ARGUMENT (`pubsub_proxy.limits`);
- a subscription filter that does not parse or is over 256 bytes is refused at create, and an
  update may not change a filter (`pubsub_proxy.filters`);
- on Pull and StreamingPull, messages that do not match the subscription's filter are
  acknowledged on the backend and never delivered, as Pub/Sub does, unless the backend already
  filters (probed once at start);
- optionally, a seeded share of pulls returns fewer messages than are available, even none (the
  `max_messages` docstring: "The Pub/Sub system may return fewer than the number specified"), and
  StreamingPull responses are split;
- injected faults: the next N calls of a method fail with a chosen status.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
from google.pubsub_v1.types import pubsub as types

from pubsub_proxy.control import CONTROL_METHOD, ProxyState
from pubsub_proxy.filters import Filter, FilterError, parse
from pubsub_proxy.limits import publish_request_problem

log = logging.getLogger("pubsub_proxy")

PUBLISHER = "/google.pubsub.v1.Publisher/"
SUBSCRIBER = "/google.pubsub.v1.Subscriber/"
STREAMING_PULL = SUBSCRIBER + "StreamingPull"

PublishRequest = types.PublishRequest.pb()
Subscription = types.Subscription.pb()
UpdateSubscriptionRequest = types.UpdateSubscriptionRequest.pb()
DeleteSubscriptionRequest = types.DeleteSubscriptionRequest.pb()
GetSubscriptionRequest = types.GetSubscriptionRequest.pb()
PullRequest = types.PullRequest.pb()
PullResponse = types.PullResponse.pb()
StreamingPullRequest = types.StreamingPullRequest.pb()
StreamingPullResponse = types.StreamingPullResponse.pb()
AcknowledgeRequest = types.AcknowledgeRequest.pb()

CHANNEL_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
EMPTY_PULL_WAIT = 0.1
"""Seconds an empty partial Pull waits before answering (production waits a bounded time)."""


def _short(method: str) -> str:
    return method.rsplit("/", 1)[-1]


class StrictProxy:
    """Start with `start()`; clients use `address` as PUBSUB_EMULATOR_HOST."""

    def __init__(
        self,
        backend: str,
        host: str = "127.0.0.1",
        port: int = 0,
        partial_fraction: float = 0.0,
        seed: int = 0,
        max_workers: int = 128,
    ) -> None:
        self.backend = backend
        self.host = host
        self.port = port
        self.state = ProxyState(partial_fraction=partial_fraction, seed=seed)
        self.backend_filters = False
        self._channel = grpc.insecure_channel(backend, options=CHANNEL_OPTIONS)
        self._unary: dict[str, Any] = {}
        self._filters: dict[str, Filter | None] = {}
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="proxy"),
            handlers=[_Handler(self)],
            options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)],
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, probe_timeout: float = 20.0) -> str:
        """Probe whether the backend filters, then listen; return the address."""
        self.backend_filters = backend_applies_filters(self._channel, probe_timeout)
        self.port = self._server.add_insecure_port(f"{self.host}:{self.port}")
        if not self.port:
            raise OSError(f"cannot listen on {self.host}:{self.port}")
        self._server.start()
        log.info("strict proxy on %s in front of %s", self.address, self.backend)
        return self.address

    def stop(self, grace: float = 1.0) -> None:
        self._server.stop(grace).wait(grace + 1)
        self._channel.close()

    def wait(self) -> None:
        self._server.wait_for_termination()

    def info(self) -> dict[str, Any]:
        return {"backend": self.backend, "backend_filters": self.backend_filters}

    # --- forwarding -----------------------------------------------------------------------------

    def call(self, method: str, request: bytes, context: grpc.ServicerContext | None) -> bytes:
        """Forward one unary call as bytes; a backend error becomes the same status here."""
        stub = self._unary.get(method)
        if stub is None:
            stub = self._unary[method] = self._channel.unary_unary(method)
        timeout = context.time_remaining() if context is not None else 10.0
        try:
            return stub(request, timeout=timeout, metadata=_metadata(context))
        except grpc.RpcError as err:
            if context is None:
                raise
            context.abort(err.code(), err.details() or "")
            raise  # unreachable: abort raises

    def unary(self, method: str, request: bytes, context: grpc.ServicerContext) -> bytes:
        self._inject(method, context)
        special = {
            PUBLISHER + "Publish": self._publish,
            SUBSCRIBER + "CreateSubscription": self._create_subscription,
            SUBSCRIBER + "UpdateSubscription": self._update_subscription,
            SUBSCRIBER + "DeleteSubscription": self._delete_subscription,
            SUBSCRIBER + "Pull": self._pull,
        }.get(method)
        if special is not None:
            return special(request, context)
        return self.call(method, request, context)

    def control(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        try:
            reply = self.state.handle(json.loads(request or b"{}"), self.info())
        except (ValueError, KeyError, TypeError) as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        return json.dumps(reply).encode()

    def _inject(self, method: str, context: grpc.ServicerContext) -> None:
        fault = self.state.take_fault(_short(method))
        if fault is not None:
            context.abort(getattr(grpc.StatusCode, fault.code), fault.details)

    # --- production rules -----------------------------------------------------------------------

    def _publish(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        messages = PublishRequest.FromString(request).messages
        problem = publish_request_problem(messages)
        if problem:
            self.state.count("publish_refused")
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        reply = self.call(PUBLISHER + "Publish", request, context)
        self.state.count("publish_requests")
        self.state.count("published_messages", len(messages))
        return reply

    def _create_subscription(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        subscription = Subscription.FromString(request)
        try:
            parsed = parse(subscription.filter) if subscription.filter else None
        except FilterError as err:
            self.state.count("filter_refused")
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid filter: {err}")
        reply = self.call(SUBSCRIBER + "CreateSubscription", request, context)
        self._filters[subscription.name] = parsed
        return reply

    def _update_subscription(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        update = UpdateSubscriptionRequest.FromString(request)
        if "filter" in update.update_mask.paths:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "a subscription's filter cannot be changed after it is created",
            )
        return self.call(SUBSCRIBER + "UpdateSubscription", request, context)

    def _delete_subscription(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        reply = self.call(SUBSCRIBER + "DeleteSubscription", request, context)
        self._filters.pop(DeleteSubscriptionRequest.FromString(request).subscription, None)
        return reply

    def filter_for(self, subscription: str) -> Filter | None:
        """The subscription's filter, read once from the backend (None: deliver everything)."""
        if self.backend_filters:
            return None
        if subscription in self._filters:
            return self._filters[subscription]
        try:
            request = GetSubscriptionRequest(subscription=subscription).SerializeToString()
            text = Subscription.FromString(
                self.call(SUBSCRIBER + "GetSubscription", request, None)
            ).filter
        except grpc.RpcError:
            return None  # the pull itself reports NOT_FOUND and the like
        try:
            parsed = parse(text) if text else None
        except FilterError:  # created on the bare emulator, around the proxy
            log.warning("subscription %s has a filter production refuses: %r", subscription, text)
            parsed = None
        self._filters[subscription] = parsed
        return parsed

    def _drop(self, subscription: str, messages: list[Any], found: Filter) -> list[Any]:
        """The messages `found` admits; the rest are acknowledged on the backend."""
        keep = [m for m in messages if found.matches(m.message.attributes)]
        if len(keep) < len(messages):
            dropped = [m.ack_id for m in messages if not found.matches(m.message.attributes)]
            ack = AcknowledgeRequest(subscription=subscription, ack_ids=dropped)
            self.call(SUBSCRIBER + "Acknowledge", ack.SerializeToString(), None)
            self.state.count("filtered_out", len(dropped))
        return keep

    def _pull(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        pull = PullRequest.FromString(request)
        found = self.filter_for(pull.subscription)
        size = self.state.partial_size(pull.max_messages)
        if size == 0:
            time.sleep(min(EMPTY_PULL_WAIT, max(0.0, context.time_remaining() or 0.0)))
            return PullResponse().SerializeToString()
        if size is not None:
            pull.max_messages = size
            request = pull.SerializeToString()
        for _ in range(5):
            reply = self.call(SUBSCRIBER + "Pull", request, context)
            if found is None:
                return reply
            response = PullResponse.FromString(reply)
            messages = list(response.received_messages)
            keep = self._drop(pull.subscription, messages, found)
            if keep or not messages or (context.time_remaining() or 0) < 1.0:
                return PullResponse(received_messages=keep).SerializeToString()
        return PullResponse().SerializeToString()

    def streaming_pull(
        self, requests: Iterator[bytes], context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        self._inject(STREAMING_PULL, context)
        first = next(requests, None)
        if first is None:
            return
        subscription = StreamingPullRequest.FromString(first).subscription
        found = self.filter_for(subscription)

        def upstream() -> Iterator[bytes]:
            yield first
            try:
                yield from requests
            except grpc.RpcError:  # the client went away; the backend call is cancelled
                return

        call = self._channel.stream_stream(STREAMING_PULL)(upstream(), metadata=_metadata(context))
        context.add_callback(call.cancel)
        try:
            for reply in call:
                if found is None and self.state.partial_fraction <= 0:
                    yield reply
                    continue
                yield from self._reshape(subscription, reply, found)
        except grpc.RpcError as err:
            if context.is_active() and err.code() != grpc.StatusCode.CANCELLED:
                context.abort(err.code(), err.details() or "")

    def _reshape(self, subscription: str, reply: bytes, found: Filter | None) -> Iterator[bytes]:
        """Filter one StreamingPull response and maybe split it in two."""
        response = StreamingPullResponse.FromString(reply)
        messages = list(response.received_messages)
        keep = self._drop(subscription, messages, found) if found else messages
        cut = self.state.split_point(len(keep))
        parts = [keep] if cut is None else [keep[:cut], keep[cut:]]
        for index, part in enumerate(parts):
            out = StreamingPullResponse()
            if index == 0:
                out.CopyFrom(response)
                del out.received_messages[:]
                if not part and not out.ListFields():
                    continue  # everything was filtered out and nothing else to say
            out.received_messages.extend(part)
            yield out.SerializeToString()


class _Handler(grpc.GenericRpcHandler):
    def __init__(self, proxy: StrictProxy) -> None:
        self.proxy = proxy

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = details.method
        if method == CONTROL_METHOD:
            return grpc.unary_unary_rpc_method_handler(self.proxy.control)
        if method == STREAMING_PULL:
            return grpc.stream_stream_rpc_method_handler(self.proxy.streaming_pull)
        return grpc.unary_unary_rpc_method_handler(
            lambda request, context: self.proxy.unary(method, request, context)
        )


def _metadata(context: grpc.ServicerContext | None) -> list[tuple[str, str]]:
    """The caller's routing headers, passed on (gRPC's own headers are not forwarded)."""
    if context is None:
        return []
    return [(k, v) for k, v in context.invocation_metadata() if k.startswith("x-goog-")]


def backend_applies_filters(channel: grpc.Channel, timeout: float = 20.0) -> bool:
    """Whether the backend delivers by subscription filter itself: publish one message the
    filter refuses, then one it admits, and pull until the admitted one arrives."""
    name = uuid.uuid4().hex[:12]
    topic = f"projects/strict-proxy-probe/topics/probe-{name}"
    subscription = f"projects/strict-proxy-probe/subscriptions/probe-{name}"

    def call(method: str, message: Any) -> bytes:
        stub = channel.unary_unary(method)
        return stub(message.SerializeToString(), timeout=timeout)

    call(PUBLISHER + "CreateTopic", types.Topic.pb()(name=topic))
    try:
        call(
            SUBSCRIBER + "CreateSubscription",
            Subscription(name=subscription, topic=topic, filter='attributes.probe = "keep"'),
        )
        messages = [
            types.PubsubMessage.pb()(data=b"x", attributes={"probe": value})
            for value in ("drop", "keep")
        ]
        call(PUBLISHER + "Publish", PublishRequest(topic=topic, messages=messages))
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while "keep" not in seen and time.monotonic() < deadline:
            reply = PullResponse.FromString(
                call(SUBSCRIBER + "Pull", PullRequest(subscription=subscription, max_messages=10))
            )
            seen += [m.message.attributes["probe"] for m in reply.received_messages]
        if "keep" not in seen:
            raise RuntimeError("the Pub/Sub backend did not deliver the filter probe")
        return "drop" not in seen
    finally:
        call(
            SUBSCRIBER + "DeleteSubscription", DeleteSubscriptionRequest(subscription=subscription)
        )
        call(PUBLISHER + "DeleteTopic", types.DeleteTopicRequest.pb()(topic=topic))
