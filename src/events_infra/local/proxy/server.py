"""The strict Pub/Sub proxy: a loopback server in front of the emulator, over gRPC and over
Pub/Sub's HTTP/JSON API on the same address (`front`, `http_json`), as Google serves both.

Every Publisher, Subscriber, IAM and Schema call is forwarded to the emulator as raw bytes (a
REST call first becomes the gRPC request its route names). On top, the proxy applies the
production rules the emulator skips, whichever protocol the client speaks:

- Publish requests that break Pub/Sub's limits (one ordering key per request, 1,000 messages,
  10 MB, attribute limits) are refused with INVALID_ARGUMENT (`events_infra.pubsub.limits`);
- a subscription filter that does not parse or is over 256 bytes is refused at create, and an
  update may not change a filter (`events_infra.pubsub.filters`);
- on Pull and StreamingPull, messages that do not match the subscription's filter are
  acknowledged on the backend and never delivered, as Pub/Sub does, unless the backend already
  filters (probed once at start);
- optionally, a seeded share of pulls returns fewer messages than are available, even none (the
  `max_messages` docstring: "The Pub/Sub system may return fewer than the number specified"), and
  StreamingPull responses are split;
- injected faults: the next N calls of a method fail with a chosen status.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.pubsub_v1.types import pubsub as types

from events_infra.local.proxy.ack_ledger import AckLedger
from events_infra.local.proxy.control import CONTROL_METHOD, ProxyState
from events_infra.local.proxy.front import Front
from events_infra.local.proxy.http_json import HttpJsonServer
from events_infra.pubsub.filters import Filter, FilterError, parse
from events_infra.pubsub.limits import publish_request_problem

log = logging.getLogger("events_infra.local.proxy")

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
ModifyAckDeadlineRequest = types.ModifyAckDeadlineRequest.pb()

CHANNEL_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
EMPTY_PULL_WAIT = 0.1
"""Seconds an empty partial Pull waits before answering (production waits a bounded time)."""


def _short(method: str) -> str:
    return method.rsplit("/", 1)[-1]


class StrictProxy:
    """Start with `start()`; clients use `address` as PUBSUB_EMULATOR_HOST.

    The server is asyncio gRPC on an event loop of its own thread: one thread, no per-call
    thread switches, so a forwarded call costs a fraction of what the threaded server costs (the
    proxy must not become the bottleneck of the benches it stands in)."""

    def __init__(
        self,
        backend: str,
        host: str = "127.0.0.1",
        port: int = 0,
        partial_fraction: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.backend = backend
        self.host = host
        self.port = port
        self.state = ProxyState(partial_fraction=partial_fraction, seed=seed)
        self.backend_filters = False
        self._unary: dict[str, Any] = {}
        self._filters: dict[str, Filter | None] = {}
        self._ack_deadlines: dict[str, int] = {}
        self.acks = AckLedger()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._channel: Any = None
        self._front: Front | None = None
        self._http: HttpJsonServer | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._stopping: asyncio.Event | None = None
        self._grace = 1.0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, probe_timeout: float = 20.0) -> str:
        """Probe whether the backend filters, then listen; return the address."""
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._serve(probe_timeout)), name="strict-proxy",
            daemon=True,
        )  # fmt: skip
        self._thread.start()
        self._started.wait(probe_timeout + 10)
        if self._error is not None:
            raise self._error
        if not self._started.is_set():
            raise TimeoutError(f"the strict proxy did not start in front of {self.backend}")
        log.info("strict proxy on %s in front of %s", self.address, self.backend)
        return self.address

    async def _serve(self, probe_timeout: float) -> None:
        try:
            self._loop = asyncio.get_running_loop()
            self._channel = grpc.aio.insecure_channel(self.backend, options=CHANNEL_OPTIONS)
            self.backend_filters = await backend_applies_filters(self._channel, probe_timeout)
            self._server = grpc.aio.server(
                handlers=[_Handler(self)],
                options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)],
            )
            grpc_port = self._server.add_insecure_port("127.0.0.1:0")
            if not grpc_port:
                raise OSError("cannot listen on a loopback port for gRPC")
            await self._server.start()
            self._http = HttpJsonServer(self.unary)
            http_port = await self._http.start()
            self._front = Front(grpc_port, http_port)
            self.port = await self._front.start(self.host, self.port)
        except BaseException as err:
            self._error = err
            self._started.set()
            return
        self._stopping = asyncio.Event()
        self._started.set()
        await self._stopping.wait()
        await self._front.stop()
        await self._http.stop()
        await self._server.stop(self._grace)
        await self._channel.close()

    def stop(self, grace: float = 1.0) -> None:
        """Stop serving (in-flight calls get `grace` seconds) and wait for the loop to end."""
        self._grace = grace
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(grace + 5)

    def info(self) -> dict[str, Any]:
        return {"backend": self.backend, "backend_filters": self.backend_filters}

    # --- forwarding -----------------------------------------------------------------------------

    async def call(self, method: str, request: bytes, context: Any) -> bytes:
        """Forward one unary call as bytes; a backend error becomes the same status here."""
        stub = self._unary.get(method)
        if stub is None:
            stub = self._unary[method] = self._channel.unary_unary(method)
        timeout = context.time_remaining() if context is not None else 10.0
        try:
            return await stub(request, timeout=timeout, metadata=_metadata(context))
        except grpc.aio.AioRpcError as err:
            if context is None:
                raise
            await context.abort(err.code(), err.details() or "")
            raise  # unreachable: abort raises

    async def unary(self, method: str, request: bytes, context: Any) -> bytes:
        if method != PUBLISHER + "Publish":
            return await self._forward_unary(method, request, context)
        self.state.entered("publish")  # how many Publish calls a client keeps in flight
        try:
            key = None
            if self.state.keyed_delays("Publish"):
                messages = PublishRequest.FromString(request).messages
                key = messages[0].ordering_key if messages else None
            await self._inject(method, context, key)
            return await self._publish(request, context)
        finally:
            self.state.left("publish")

    async def _forward_unary(self, method: str, request: bytes, context: Any) -> bytes:
        await self._inject(method, context)
        special = {
            SUBSCRIBER + "CreateSubscription": self._create_subscription,
            SUBSCRIBER + "UpdateSubscription": self._update_subscription,
            SUBSCRIBER + "DeleteSubscription": self._delete_subscription,
            SUBSCRIBER + "Pull": self._pull,
            SUBSCRIBER + "Acknowledge": self._acknowledge,
            SUBSCRIBER + "ModifyAckDeadline": self._modify_ack_deadline,
        }.get(method)
        if special is not None:
            return await special(request, context)
        return await self.call(method, request, context)

    async def control(self, request: bytes, context: Any) -> bytes:
        try:
            reply = self.state.handle(json.loads(request or b"{}"), self.info())
        except (ValueError, KeyError, TypeError) as err:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        return json.dumps(reply).encode()

    async def _inject(self, method: str, context: Any, ordering_key: str | None = None) -> None:
        delay = self.state.take_delay(_short(method), ordering_key)
        if delay:
            await asyncio.sleep(delay)  # a caller whose deadline passes meanwhile cancels us
        fault = self.state.take_fault(_short(method))
        if fault is not None:
            await context.abort(getattr(grpc.StatusCode, fault.code), fault.details)

    # --- production rules -----------------------------------------------------------------------

    async def _publish(self, request: bytes, context: Any) -> bytes:
        messages = PublishRequest.FromString(request).messages
        problem = publish_request_problem(messages)
        if problem:
            self.state.count("publish_refused")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        reply = await self.call(PUBLISHER + "Publish", request, context)
        self.state.count("publish_requests")
        self.state.count("published_messages", len(messages))
        return reply

    async def _create_subscription(self, request: bytes, context: Any) -> bytes:
        subscription = Subscription.FromString(request)
        try:
            parsed = parse(subscription.filter) if subscription.filter else None
        except FilterError as err:
            self.state.count("filter_refused")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid filter: {err}")
        reply = await self.call(SUBSCRIBER + "CreateSubscription", request, context)
        self._filters[subscription.name] = parsed
        self._ack_deadlines[subscription.name] = Subscription.FromString(reply).ack_deadline_seconds
        return reply

    async def _update_subscription(self, request: bytes, context: Any) -> bytes:
        update = UpdateSubscriptionRequest.FromString(request)
        if "filter" in update.update_mask.paths:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "a subscription's filter cannot be changed after it is created",
            )
        return await self.call(SUBSCRIBER + "UpdateSubscription", request, context)

    async def _delete_subscription(self, request: bytes, context: Any) -> bytes:
        reply = await self.call(SUBSCRIBER + "DeleteSubscription", request, context)
        name = DeleteSubscriptionRequest.FromString(request).subscription
        self._filters.pop(name, None)
        self._ack_deadlines.pop(name, None)
        return reply

    async def filter_for(self, subscription: str) -> Filter | None:
        """The subscription's filter, read once from the backend (None: deliver everything)."""
        if subscription not in self._filters:
            await self._describe(subscription)
        return None if self.backend_filters else self._filters.get(subscription)

    async def ack_deadline(self, subscription: str) -> int:
        if subscription not in self._ack_deadlines:
            await self._describe(subscription)
        return self._ack_deadlines.get(subscription) or 10

    async def _describe(self, subscription: str) -> None:
        """Read a subscription's filter and ack deadline from the backend, once."""
        try:
            request = GetSubscriptionRequest(subscription=subscription).SerializeToString()
            reply = await self.call(SUBSCRIBER + "GetSubscription", request, None)
        except grpc.aio.AioRpcError:
            return  # the pull itself reports NOT_FOUND and the like
        described = Subscription.FromString(reply)
        self._ack_deadlines[subscription] = described.ack_deadline_seconds
        text = described.filter
        try:
            parsed = parse(text) if text else None
        except FilterError:  # created on the bare emulator, around the proxy
            log.warning("subscription %s has a filter production refuses: %r", subscription, text)
            parsed = None
        self._filters[subscription] = parsed

    async def _drop(self, subscription: str, messages: list[Any], found: Filter) -> list[Any]:
        """The messages `found` admits; the rest are acknowledged on the backend."""
        keep = [m for m in messages if found.matches(m.message.attributes)]
        if len(keep) < len(messages):
            dropped = [m.ack_id for m in messages if not found.matches(m.message.attributes)]
            ack = AcknowledgeRequest(subscription=subscription, ack_ids=dropped)
            await self.call(SUBSCRIBER + "Acknowledge", ack.SerializeToString(), None)
            self.state.count("filtered_out", len(dropped))
        return keep

    async def _pull(self, request: bytes, context: Any) -> bytes:
        pull = PullRequest.FromString(request)
        found = await self.filter_for(pull.subscription)
        size = self.state.partial_size(pull.max_messages)
        if size == 0:
            await asyncio.sleep(min(EMPTY_PULL_WAIT, max(0.0, context.time_remaining() or 0.0)))
            return PullResponse().SerializeToString()
        if size is not None:
            pull.max_messages = size
            request = pull.SerializeToString()
        deadline = await self.ack_deadline(pull.subscription)
        for _ in range(5):
            reply = await self.call(SUBSCRIBER + "Pull", request, context)
            response = PullResponse.FromString(reply)
            messages = list(response.received_messages)
            if found is None:
                self.acks.delivered((m.ack_id for m in messages), deadline)
                return reply
            keep = await self._drop(pull.subscription, messages, found)
            if keep or not messages or (context.time_remaining() or 0) < 1.0:
                self.acks.delivered((m.ack_id for m in keep), deadline)
                return PullResponse(received_messages=keep).SerializeToString()
        return PullResponse().SerializeToString()

    async def _acknowledge(self, request: bytes, context: Any) -> bytes:
        ack = AcknowledgeRequest.FromString(request)
        live, late = self.acks.acknowledged(ack.ack_ids)
        if late:
            self.state.count("late_acks_dropped", len(late))
            if not live:
                return b""  # production answers OK and redelivers the message later
            request = AcknowledgeRequest(
                subscription=ack.subscription, ack_ids=live
            ).SerializeToString()
        return await self.call(SUBSCRIBER + "Acknowledge", request, context)

    async def _modify_ack_deadline(self, request: bytes, context: Any) -> bytes:
        modify = ModifyAckDeadlineRequest.FromString(request)
        live = self.acks.modified(modify.ack_ids, modify.ack_deadline_seconds)
        if len(live) < len(modify.ack_ids):
            self.state.count("late_modacks_dropped", len(modify.ack_ids) - len(live))
            if not live:
                return b""
            modify = ModifyAckDeadlineRequest(
                subscription=modify.subscription,
                ack_ids=live,
                ack_deadline_seconds=modify.ack_deadline_seconds,
            )
            request = modify.SerializeToString()
        return await self.call(SUBSCRIBER + "ModifyAckDeadline", request, context)

    async def streaming_pull(
        self, requests: AsyncIterator[bytes], context: Any
    ) -> AsyncIterator[bytes]:
        await self._inject(STREAMING_PULL, context)
        first = await anext(aiter(requests), None)
        if first is None:
            return
        opening = StreamingPullRequest.FromString(first)
        subscription = opening.subscription
        found = await self.filter_for(subscription)
        stream_deadline = opening.stream_ack_deadline_seconds or 10

        async def upstream() -> AsyncIterator[bytes]:
            yield first
            try:
                async for item in requests:
                    yield self._in_time(item)
            except (grpc.aio.AioRpcError, asyncio.CancelledError):
                return  # the client went away; the backend call is cancelled below

        call = self._channel.stream_stream(STREAMING_PULL)(upstream(), metadata=_metadata(context))
        try:
            async for reply in call:
                for part, ack_ids in await self._reshape(subscription, reply, found):
                    self.acks.delivered(ack_ids, stream_deadline)
                    yield part
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.CANCELLED:
                await context.abort(err.code(), err.details() or "")
        finally:
            call.cancel()

    def _in_time(self, item: bytes) -> bytes:
        """A StreamingPull request with acks and deadline changes of late ack ids removed."""
        request = StreamingPullRequest.FromString(item)
        if not (request.ack_ids or request.modify_deadline_ack_ids):
            return item
        live, late = self.acks.acknowledged(request.ack_ids)
        pairs = [
            (a, s)
            for a, s in zip(
                request.modify_deadline_ack_ids, request.modify_deadline_seconds, strict=False
            )
            if self.acks.modified([a], s)
        ]
        if not late and len(pairs) == len(request.modify_deadline_ack_ids):
            return item
        self.state.count("late_acks_dropped", len(late))
        del request.ack_ids[:]
        request.ack_ids.extend(live)
        del request.modify_deadline_ack_ids[:]
        del request.modify_deadline_seconds[:]
        request.modify_deadline_ack_ids.extend(a for a, _ in pairs)
        request.modify_deadline_seconds.extend(s for _, s in pairs)
        return request.SerializeToString()

    async def _reshape(
        self, subscription: str, reply: bytes, found: Filter | None
    ) -> list[tuple[bytes, list[str]]]:
        """Filter one StreamingPull response and maybe split it in two; each part comes with
        the ack ids it delivers (parsed once)."""
        response = StreamingPullResponse.FromString(reply)
        messages = list(response.received_messages)
        if found is None and self.state.partial_fraction <= 0:
            return [(reply, [m.ack_id for m in messages])]
        keep = await self._drop(subscription, messages, found) if found else messages
        cut = self.state.split_point(len(keep))
        parts = [keep] if cut is None else [keep[:cut], keep[cut:]]
        out_parts = []
        for index, part in enumerate(parts):
            out = StreamingPullResponse()
            if index == 0:
                out.CopyFrom(response)
                del out.received_messages[:]
                if not part and not out.ListFields():
                    continue  # everything was filtered out and nothing else to say
            out.received_messages.extend(part)
            out_parts.append((out.SerializeToString(), [m.ack_id for m in part]))
        return out_parts


class _Handler(grpc.GenericRpcHandler):
    def __init__(self, proxy: StrictProxy) -> None:
        self.proxy = proxy

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = details.method
        if method == CONTROL_METHOD:
            return grpc.unary_unary_rpc_method_handler(self.proxy.control)
        if method == STREAMING_PULL:
            return grpc.stream_stream_rpc_method_handler(self.proxy.streaming_pull)

        async def forward(request: bytes, context: Any) -> bytes:
            return await self.proxy.unary(method, request, context)

        return grpc.unary_unary_rpc_method_handler(forward)


def _metadata(context: Any) -> list[tuple[str, str]]:
    """The caller's routing headers, passed on (gRPC's own headers are not forwarded)."""
    if context is None:
        return []
    return [(k, v) for k, v in (context.invocation_metadata() or ()) if k.startswith("x-goog-")]


async def backend_applies_filters(channel: Any, timeout: float = 20.0) -> bool:
    """Whether the backend delivers by subscription filter itself: publish one message the
    filter refuses, then one it admits, and pull until the admitted one arrives."""
    name = uuid.uuid4().hex[:12]
    topic = f"projects/strict-proxy-probe/topics/probe-{name}"
    subscription = f"projects/strict-proxy-probe/subscriptions/probe-{name}"

    async def call(method: str, message: Any) -> bytes:
        stub = channel.unary_unary(method)
        return await stub(message.SerializeToString(), timeout=timeout)

    await call(PUBLISHER + "CreateTopic", types.Topic.pb()(name=topic))
    try:
        await call(
            SUBSCRIBER + "CreateSubscription",
            Subscription(name=subscription, topic=topic, filter='attributes.probe = "keep"'),
        )
        messages = [
            types.PubsubMessage.pb()(data=b"x", attributes={"probe": value})
            for value in ("drop", "keep")
        ]
        await call(PUBLISHER + "Publish", PublishRequest(topic=topic, messages=messages))
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while "keep" not in seen and time.monotonic() < deadline:
            pull = PullRequest(subscription=subscription, max_messages=10)
            reply = PullResponse.FromString(await call(SUBSCRIBER + "Pull", pull))
            seen += [m.message.attributes["probe"] for m in reply.received_messages]
        if "keep" not in seen:
            raise RuntimeError("the Pub/Sub backend did not deliver the filter probe")
        return "drop" not in seen
    finally:
        delete = DeleteSubscriptionRequest(subscription=subscription)
        await call(SUBSCRIBER + "DeleteSubscription", delete)
        await call(PUBLISHER + "DeleteTopic", types.DeleteTopicRequest.pb()(topic=topic))
