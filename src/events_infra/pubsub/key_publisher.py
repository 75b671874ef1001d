"""Publishing runs of outbox rows: one Publish request per ordering key, many keys at once.

Each key's requests go out in order, one after the other; different keys are published in
parallel by a bounded thread pool. Every call has an explicit retry deadline and per-attempt
timeout and runs in the caller's thread pool, so when `publish` returns nothing is still
retrying in the background (the client library's ordered publisher would keep retrying a key
forever, and a late copy could land after a later event of the same key).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from events_infra.pubsub.publish_requests import Outgoing, request_chunks


class NotAttempted(Exception):
    """An earlier row of the same key failed, so this one was not sent (order first)."""


def make_publisher(endpoint: str | None = None) -> Any:
    """The Pub/Sub publisher API client: the emulator (or the strict proxy) when
    PUBSUB_EMULATOR_HOST is set, else `endpoint` (a locational endpoint such as
    `asia-south1-pubsub.googleapis.com:443`, see the stack's `pubsub` section) with
    Application Default Credentials."""
    from google.pubsub_v1 import PublisherClient

    emulator = os.environ.get("PUBSUB_EMULATOR_HOST")
    if emulator:
        import grpc
        from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

        channel = grpc.insecure_channel(
            emulator,
            options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)],
        )
        return PublisherClient(transport=PublisherGrpcTransport(channel=channel))
    return PublisherClient(client_options={"api_endpoint": endpoint} if endpoint else None)


def _transient(error: BaseException) -> bool:
    from google.api_core import exceptions as gexc

    return isinstance(
        error,
        gexc.ServiceUnavailable
        | gexc.DeadlineExceeded
        | gexc.InternalServerError
        | gexc.TooManyRequests
        | gexc.Aborted
        | gexc.Unknown,
    )


class KeyPublisher:
    """Publishes groups of messages keyed by ordering key; `publish` returns row id -> message
    id, or the exception the row failed with (`NotAttempted` for rows behind a failure)."""

    def __init__(
        self,
        api: Any,
        topic: str,
        concurrency: int = 32,
        timeout: float = 20.0,
        stop: threading.Event | None = None,
    ) -> None:
        """`stop`: once set, keys not yet sent are not attempted (NotAttempted: their rows are
        released, no attempt spent), so a shutdown waits for the requests on the wire, not for
        the rest of the batch (the relay passes its `stopping`)."""
        self.api = api
        self.topic = topic
        self.timeout = timeout
        self._stop = stop
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="publish")

    def publish(self, groups: dict[str, list[Outgoing]]) -> dict[Any, Any]:
        outcomes: dict[Any, Any] = {}
        for result in self._pool.map(self.publish_key, groups.values()):
            outcomes.update(result)
        return outcomes

    def publish_messages(self, messages: list[Outgoing]) -> tuple[list[Any], list[Any]]:
        """Publish `messages` (grouped by ordering key, each key in the given order); return
        (ids Pub/Sub confirmed, ids it did not), each in the given order."""
        groups: dict[str, list[Outgoing]] = {}
        for message in messages:
            groups.setdefault(message.ordering_key, []).append(message)
        outcomes = self.publish(groups)
        confirmed, failed = [], []
        for message in messages:
            ok = not isinstance(outcomes.get(message.row_id), BaseException | None)
            (confirmed if ok else failed).append(message.row_id)
        return confirmed, failed

    def publish_key(self, messages: list[Outgoing]) -> dict[Any, Any]:
        """One key's messages, in order; stops at the first failure that is not the message's
        own fault, so nothing of this key overtakes a row that will be retried."""
        from google.api_core import exceptions as gexc

        outcomes: dict[Any, Any] = {}
        chunks = request_chunks(messages)
        for index, chunk in enumerate(chunks):
            if self._stop is not None and self._stop.is_set():  # shutting down: not sent
                for later in chunks[index:]:
                    outcomes.update(dict.fromkeys((m.row_id for m in later), NotAttempted()))
                break
            try:
                outcomes.update(zip([m.row_id for m in chunk], self._send(chunk), strict=True))
                continue
            except gexc.InvalidArgument:
                stopped = self._one_by_one(chunk, outcomes)
            except Exception as err:  # unreachable, timed out, refused: the request failed
                outcomes.update(dict.fromkeys((m.row_id for m in chunk), err))
                stopped = True
            if stopped:
                for later in chunks[index + 1 :]:
                    outcomes.update(dict.fromkeys((m.row_id for m in later), NotAttempted()))
                break
        return outcomes

    def _one_by_one(self, chunk: list[Outgoing], outcomes: dict[Any, Any]) -> bool:
        """A request was refused as invalid: find the message(s) at fault, in order. Returns
        True when a failure that is not the message's fault stopped the key."""
        from google.api_core import exceptions as gexc

        for position, message in enumerate(chunk):
            try:
                [outcomes[message.row_id]] = self._send([message])
            except gexc.InvalidArgument as err:
                outcomes[message.row_id] = err  # this message is the bad one: failed for good
            except Exception as err:
                outcomes[message.row_id] = err
                for later in chunk[position + 1 :]:
                    outcomes[later.row_id] = NotAttempted()
                return True
        return False

    def _send(self, chunk: list[Outgoing]) -> list[str]:
        from google.api_core.retry import Retry
        from google.pubsub_v1.types import PublishRequest, PubsubMessage

        # built as raw protobuf and wrapped once: the client's per-message wrappers cost
        # about six times as much (bench/dlq_replay.py, bench/outbox_relay.py)
        message = PubsubMessage.pb()
        request = PublishRequest.pb()(
            topic=self.topic,
            messages=[
                message(data=m.data, attributes=m.attributes, ordering_key=m.ordering_key)
                for m in chunk
            ],
        )
        response = self.api.publish(
            request=PublishRequest.wrap(request),
            retry=Retry(
                predicate=_transient,
                initial=0.1,
                maximum=2.0,
                multiplier=2.0,
                timeout=self.timeout,
            ),
            timeout=min(self.timeout, 10.0),
        )
        return list(response.message_ids)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
