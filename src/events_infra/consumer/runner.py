"""The consumer: streaming pull → batches → the service's transaction → ack after commit.

    def on_trade(event: ReceivedEvent, conn: psycopg.Connection) -> None:
        conn.execute("INSERT INTO positions ...", ...)      # same transaction as the dedupe row

    Consumer(subscription, on_trade, database_url).run()    # until SIGTERM / SIGINT

Messages arrive through google-cloud-pubsub's streaming pull (which extends their leases while
held and, on an ordered subscription, hands out a key's next message only after the previous
one is acked or nacked, so keys are processed in order). The callback only queues them; worker
threads take batches, run `consumer.batch.process_batch` in one transaction each and settle the
messages after the commit. Shutdown finishes the batches in flight, stops every stream (which
flushes the acks), then gives back everything else in one call: nothing is lost, at worst
redelivered and deduped, and no message is bounced between the consumer's own closing streams.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import queue
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from events_infra.consumer.batch import Outcome, Result, process_batch
from events_infra.consumer.event import LegacyMessages
from events_infra.consumer.log_metrics import POISON_LOGGED
from events_infra.consumer.transactions import AsyncTransactions, SyncTransactions
from events_infra.errors import EventsInfraError, first_line
from events_infra.pubsub.api_calls import modify_deadlines

LOG = logging.getLogger("events_infra.consumer")


class PoisonEvent(EventsInfraError):
    """Raise from a handler for an event that can never succeed: it is logged as poison and
    nacked, and Pub/Sub itself moves it to the dead-letter topic after the subscription's
    max_delivery_attempts. The consumer never publishes to the dead-letter topic: a letter
    there is then always Pub/Sub's own, so `dlq replay` can trust where it came from (no
    consumer holds publish rights on the DLQ to forge one)."""


class ConsumerError(EventsInfraError, RuntimeError):
    """The consumer cannot run (subscription or database unreachable, bad settings)."""


@dataclass
class ConsumerOptions:
    consumer_name: str | None = None
    """Dedupe scope in processed_events; default: the subscription's short name."""
    poison: tuple[type[BaseException], ...] = (PoisonEvent,)
    max_messages: int = 1000
    """Flow control: messages held (queued or in a batch) at once."""
    max_bytes: int = 100 * 1024 * 1024
    batch_size: int = 100
    batch_wait_s: float = 0.005
    """How long a worker waits to fill a batch once it has one message."""
    workers: int = 2
    """Worker threads, each with its own database connection."""
    streams: int = 2
    """Streaming pulls opened at once (flow control is split between them). One stream's
    delivery rate is bounded (about 2,000 messages/s on the emulator); more streams scale it.
    An ordered subscription always uses one, so one process sees each key's messages in order."""
    shutdown_timeout_s: float = 30.0
    max_lease_extension_s: int = 60
    """Longest ack-deadline extension asked for while a message is held (the client's
    `max_duration_per_lease_extension`, 10–600). Left to itself the client picks its p99
    processing time, up to 600 s: a consumer killed then (OOM, SIGKILL, a lost node) would keep
    its held messages from every other consumer that long; with the cap they come back within
    it. 60, not less: with exactly-once delivery the client's minimum extension is 60 s."""
    legacy: LegacyMessages | None = None
    """Take in old-path messages (no event_id attribute) during a cutover instead of
    dead-lettering them; see LegacyMessages and docs/services.md."""


class Consumer:
    def __init__(
        self,
        subscription: str,
        handler: Callable[..., Any],
        database_url: str,
        options: ConsumerOptions | None = None,
    ) -> None:
        if not subscription.startswith("projects/") or "/subscriptions/" not in subscription:
            raise ConsumerError(
                f"subscription must be projects/PROJECT/subscriptions/NAME, got {subscription!r}"
            )
        self.subscription = subscription
        self.handler = handler
        self.database_url = database_url
        self.options = options or ConsumerOptions()
        self.name = self.options.consumer_name or subscription.rsplit("/", 1)[1]
        self.is_async = inspect.iscoroutinefunction(handler)
        self.counts: Counter[str] = Counter()
        self._queue: queue.Queue[Any] = queue.Queue()
        self._stopping = False
        self._stop = threading.Event()
        self._counts_lock = threading.Lock()
        self._max_attempts: int | None = None
        """The subscription's dead-letter attempts (None: no policy, or it could not be read)."""
        self.held = 0
        """Messages received and not yet acked or nacked (flow control bounds it)."""
        self.max_held = 0

    # -- lifecycle -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask `run` to finish the batches in flight and return (safe from any thread)."""
        self._stop.set()

    def run(self, handle_signals: bool = True) -> Counter[str]:
        """Consume until `stop()`, SIGTERM or SIGINT; return the outcome counts."""
        from google.cloud import pubsub_v1

        subscriber, settings = self._connect_pubsub()
        policy = settings.dead_letter_policy if "dead_letter_policy" in settings else None
        if policy is not None and policy.dead_letter_topic:
            self._max_attempts = policy.max_delivery_attempts or 5  # 0 means the API's 5
        streams = 1 if settings.enable_message_ordering else max(1, self.options.streams)
        transactions: list[Any] = []
        try:
            for _ in range(max(1, self.options.workers)):
                transactions.append(self._open_transactions())
        except ConsumerError:
            for tx in transactions:
                tx.close()
            subscriber.close()
            raise
        previous = _install_signals(self.stop) if handle_signals else {}
        workers = [
            threading.Thread(target=self._work, args=(tx,), name=f"consumer-{i}", daemon=True)
            for i, tx in enumerate(transactions)
        ]
        for worker in workers:
            worker.start()
        flow = pubsub_v1.types.FlowControl(
            max_messages=max(1, self.options.max_messages // streams),
            max_bytes=max(1, self.options.max_bytes // streams),
            max_duration_per_lease_extension=self.options.max_lease_extension_s,
        )
        subscribers = [subscriber] + [pubsub_v1.SubscriberClient() for _ in range(streams - 1)]
        futures = [
            client.subscribe(
                self.subscription, self._receive, flow_control=flow,
                await_callbacks_on_shutdown=True,
            )
            for client in subscribers
        ]  # fmt: skip
        try:
            while not self._stop.wait(0.2):
                for future in futures:
                    if future.done():  # the stream failed for good (e.g. subscription deleted)
                        error = future.exception()
                        raise ConsumerError(f"streaming pull on {self.subscription} ended: {error}")
        finally:
            self._stopping = True  # workers take no new batch; arrivals wait to be given back
            for worker in workers:
                worker.join(self.options.shutdown_timeout_s)
            for future in futures:
                future.cancel()  # does not block: every stream stops pulling at once
            for future in futures:
                # a cancelled future reports CancelledError: the stream is already shut down
                with contextlib.suppress(Exception):
                    future.result(timeout=self.options.shutdown_timeout_s)
            self._give_back_queued(subscriber)
            for client in subscribers:
                client.close()
            for tx in transactions:
                tx.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return self.counts

    def _connect_pubsub(self) -> tuple[Any, Any]:
        """A subscriber and the subscription's settings; missing credentials or an unknown
        subscription are a ConsumerError, not a traceback."""
        from google.auth.exceptions import DefaultCredentialsError
        from google.cloud import pubsub_v1

        try:
            subscriber = pubsub_v1.SubscriberClient()
        except DefaultCredentialsError as err:
            raise ConsumerError(
                "no Google credentials: attach a service account, run `gcloud auth "
                "application-default login`, or set PUBSUB_EMULATOR_HOST "
                f"({first_line(err)})"
            ) from None
        return subscriber, _read_subscription(subscriber, self.subscription)

    def _open_transactions(self) -> Any:
        kind = AsyncTransactions if self.is_async else SyncTransactions
        try:
            return kind(self.database_url, self.name, self.handler)
        except Exception as err:
            raise ConsumerError(f"cannot connect to the service database: {err}") from err

    # -- message flow ----------------------------------------------------------------------------

    def _receive(self, message: Any) -> None:
        """The streaming pull callback: queue the message. Once stopping, no worker takes it;
        it waits in the queue to be given back when every stream has stopped."""
        with self._counts_lock:
            self.held += 1
            self.max_held = max(self.max_held, self.held)
        self._queue.put(message)

    def _take_batch(self) -> list[Any]:
        try:
            batch = [self._queue.get(timeout=0.1)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.options.batch_wait_s
        while len(batch) < self.options.batch_size:
            try:
                batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return batch

    def _work(self, tx: Any) -> None:
        while not self._stopping:
            batch = self._take_batch()
            if not batch:
                continue
            try:
                results = process_batch(tx, batch, self.options.poison, self.options.legacy)
            except Exception as err:  # the database, not a handler: nothing was committed
                _safe_rollback(tx)
                results = [Result(m, Outcome.RETRY, error=err) for m in batch]
                LOG.error(_line("batch failed", error=err, messages=len(batch)))
                time.sleep(1.0)  # let the database recover before the redeliveries arrive
            self._settle(results)

    def _settle(self, results: list[Result]) -> None:
        for result in results:
            outcome = result.outcome
            if outcome is Outcome.POISON:
                outcome = self._dead_letter(result)
            elif outcome is Outcome.RETRY and result.event is not None:
                LOG.warning(_line("handler failed; Pub/Sub will redeliver", result=result))
            if outcome in (Outcome.RETRY, Outcome.POISON):
                result.message.nack()  # Pub/Sub redelivers, then dead-letters it itself
            else:
                result.message.ack()
            with self._counts_lock:
                self.counts[outcome.value] += 1
                self.held -= 1

    def _dead_letter(self, result: Result) -> Outcome:
        """A poison event: nacked (see PoisonEvent), and logged. The last delivery before Pub/Sub
        dead-letters it is logged as the line the stack's log-based metric counts (every one,
        when the subscription's policy could not be read)."""
        reason = first_line(result.error) if result.error else "poison"
        attempt = result.message.delivery_attempt or 0
        if self._max_attempts is not None:
            final = attempt >= self._max_attempts
        elif attempt:  # Pub/Sub counts attempts only under a policy we could not read
            final = True
        else:
            LOG.error(_line("poison event but the subscription has no dead-letter policy; "
                            "Pub/Sub redelivers it until one is set", result=result))  # fmt: skip
            return Outcome.POISON
        LOG.warning(
            _line(
                "poison event nacked: Pub/Sub dead-letters it after "
                f"{self._max_attempts or 'max_delivery_attempts'} deliveries ({reason})",
                result=result,
                event=POISON_LOGGED if final else "poison_nacked",
                subscription=self.subscription.rsplit("/", 1)[-1],
            )
        )
        return Outcome.POISON

    def _give_back_queued(self, subscriber: Any) -> None:
        """Give back every message received but not processed, once all streams have stopped.

        Not `message.nack()` while streams are still open: Pub/Sub redelivers a nacked message
        at once, to any open stream, so nacks sent during shutdown bounce to the consumer's own
        closing streams. Each bounce is a delivery attempt (five dead-letter an event), and a
        message that lands in a stream as it closes stays leased for the stream's ack deadline.
        The streams' own dispatchers are stopped by now, so this is one direct
        ModifyAckDeadline(0) per 1,000 messages; if it fails, Pub/Sub redelivers them when
        their deadline passes (at most max_lease_extension_s)."""
        held: list[Any] = []
        while True:
            try:
                held.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if not held:
            return
        try:
            modify_deadlines(
                subscriber,
                self.subscription,
                [m.ack_id for m in held],
                0,
                self.options.shutdown_timeout_s,
            )
        except Exception as err:
            LOG.warning(
                _line(
                    "could not give back messages at shutdown; Pub/Sub redelivers them when "
                    "their ack deadline passes",
                    error=err,
                    messages=len(held),
                )
            )
        with self._counts_lock:
            self.held -= len(held)


def _read_subscription(subscriber: Any, subscription: str) -> Any:
    """The subscription's settings (dead-letter topic, ordering), read once at start (bounded)."""
    from google.api_core import exceptions as gexc

    try:
        sub = subscriber.get_subscription(subscription=subscription, timeout=10)
    except gexc.NotFound as err:
        raise ConsumerError(f"subscription {subscription} does not exist") from err
    except gexc.PermissionDenied as err:
        # roles/pubsub.subscriber alone cannot read the subscription (no subscriptions.get):
        # still consume, safely — one stream (ordering unknown); poison events are nacked as
        # always, and Pub/Sub applies the dead-letter policy it knows.
        what = "cannot read the subscription (grant roles/pubsub.viewer on it): one stream"
        LOG.warning(_line(what, error=err))
        from google.pubsub_v1 import Subscription

        return Subscription(name=subscription, enable_message_ordering=True)
    except gexc.GoogleAPICallError as err:
        raise ConsumerError(f"cannot read subscription {subscription}: {err.message}") from err
    return sub


def _install_signals(stop: Callable[[], None]) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, lambda *_: stop())
    return previous


def _safe_rollback(tx: Any) -> None:
    with contextlib.suppress(Exception):
        tx.rollback()


def _line(what: str, result: Result | None = None, error: BaseException | None = None,
          **fields: Any) -> str:  # fmt: skip
    """One JSON log line: what happened, to which event, on which delivery attempt."""
    record: dict[str, Any] = {"msg": what, **fields}
    if result is not None:
        event = result.event
        record["message_id"] = result.message.message_id
        record["delivery_attempt"] = result.message.delivery_attempt
        if event is not None:
            record.update(event_id=str(event.event_id), event_type=event.event_type)
        error = error or result.error
    if error is not None:
        record["error"] = f"{type(error).__name__}: {first_line(error)}"
    return json.dumps(record)
