"""The outbox relay: every committed event to Pub/Sub, in order per ordering key, none lost.

One loop, safe to run in several processes at once:

1. wait for a NOTIFY (or the poll interval, whichever comes first; a lost notification or a
   dropped LISTEN connection costs at most one interval);
2. claim a batch in a short transaction: rows past the commit-visibility fence, due, unleased and
   at the head of their ordering key (`FOR UPDATE SKIP LOCKED`), leased to this relay; commit;
3. publish them with their ordering key and event id, outside any transaction;
4. settle in one short transaction, only rows this relay still leases: published, retry later
   (exponential backoff with jitter), or moved to `event_outbox_failed` for good.

A circuit breaker (pybreaker) stops claiming while Pub/Sub keeps failing and lets one batch
probe after a cool-down; rows simply wait. A lost database connection is re-opened with
backoff (tenacity). SIGTERM/SIGINT finish the batch in flight, then the loop returns.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import socket
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from outbox.enqueue import (
    MAX_ATTRIBUTE_KEY_BYTES,
    MAX_ATTRIBUTE_VALUE_BYTES,
    MAX_ATTRIBUTES,
    MAX_MESSAGE_BYTES,
    NOTIFY_CHANNEL,
)
from outbox.queries import CLAIM_SQL

log = logging.getLogger("outbox.relay")

LEASE_SQL = """
UPDATE event_outbox SET lease_owner = %s, lease_expires_at = now() + %s * interval '1 second'
WHERE id = ANY(%s)
RETURNING id, seq, event_type, event_version, aggregate_type, aggregate_id, ordering_key,
          payload, attributes, retry_count
"""

PUBLISHED_SQL = """
UPDATE event_outbox AS o
SET published = true, published_at = now(), pubsub_message_id = v.message_id,
    lease_owner = NULL, lease_expires_at = NULL, last_error = NULL
FROM (SELECT unnest(%s::uuid[]) AS id, unnest(%s::text[]) AS message_id) AS v
WHERE o.id = v.id AND o.lease_owner = %s
"""

RETRY_SQL = """
UPDATE event_outbox AS o
SET retry_count = o.retry_count + v.bump, last_error = v.error,
    next_attempt_at = now() + v.delay * interval '1 second',
    lease_owner = NULL, lease_expires_at = NULL
FROM (SELECT unnest(%s::uuid[]) AS id, unnest(%s::text[]) AS error,
             unnest(%s::float8[]) AS delay, unnest(%s::int[]) AS bump) AS v
WHERE o.id = v.id AND o.lease_owner = %s
"""

FAIL_SQL = """
WITH gone AS (
    DELETE FROM event_outbox AS o
    USING (SELECT unnest(%s::uuid[]) AS id, unnest(%s::text[]) AS reason) AS v
    WHERE o.id = v.id AND o.lease_owner = %s
    RETURNING o.*, v.reason
)
INSERT INTO event_outbox_failed (id, event_type, event_version, aggregate_type, aggregate_id,
    ordering_key, seq, payload, attributes, retry_count, created_at, reason)
SELECT id, event_type, event_version, aggregate_type, aggregate_id, ordering_key, seq, payload,
       attributes, retry_count, created_at, reason FROM gone
"""

RELEASE_SQL = """
UPDATE event_outbox SET lease_owner = NULL, lease_expires_at = NULL
WHERE lease_owner = %s AND NOT published
"""


@dataclass
class RelayConfig:
    database_url: str
    topic_path: str
    batch_size: int = 500
    lease_seconds: float = 60.0
    poll_interval: float = 1.0
    max_attempts: int = 20
    """Failed publishes before a row is moved to event_outbox_failed."""
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    breaker_failures: int = 3
    """Consecutive batches that all failed before the breaker opens."""
    breaker_cooldown: float = 30.0
    publish_timeout: float = 30.0
    relay_id: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    )


@dataclass
class BatchResult:
    claimed: int = 0
    published: int = 0
    retried: int = 0
    failed: int = 0
    latency_ms: float = 0.0


class PublishOutage(Exception):
    """Every publish of a batch failed with a transient error: Pub/Sub looks unreachable."""


class MessageRefused(ValueError):
    """The row can never be published as it is (too large, attributes Pub/Sub refuses)."""


def unpublishable(data: bytes, attributes: dict[str, str]) -> str | None:
    """Why Pub/Sub would refuse this message for good, or None. Rows written by `enqueue` are
    already checked; this catches rows inserted by other means."""
    size = len(data) + sum(len(k.encode()) + len(v.encode()) for k, v in attributes.items())
    if size > MAX_MESSAGE_BYTES:
        return f"message is {size} bytes; Pub/Sub's limit is {MAX_MESSAGE_BYTES}"
    if len(attributes) > MAX_ATTRIBUTES:
        return f"{len(attributes)} attributes; Pub/Sub's limit is {MAX_ATTRIBUTES}"
    for key, value in attributes.items():
        if not key or key.startswith("goog") or len(key.encode()) > MAX_ATTRIBUTE_KEY_BYTES:
            return f"attribute key {key[:40]!r} is not allowed by Pub/Sub"
        if len(value.encode()) > MAX_ATTRIBUTE_VALUE_BYTES:
            return f"attribute {key!r} value is over {MAX_ATTRIBUTE_VALUE_BYTES} bytes"
    return None


def is_permanent(error: BaseException) -> bool:
    """Errors no retry will fix: the message itself is unacceptable (size, attributes)."""
    from google.api_core import exceptions as gexc

    return isinstance(error, gexc.InvalidArgument | ValueError | TypeError)


def backoff_seconds(attempt: int, config: RelayConfig) -> float:
    """Exponential backoff with full jitter in [50 %, 100 %] of the step."""
    step = min(config.backoff_max, config.backoff_base * (2 ** max(0, attempt - 1)))
    return step * random.uniform(0.5, 1.0)


def message_attributes(row: dict[str, Any]) -> dict[str, str]:
    """The row's own attributes plus the event identity consumers dedupe and route on."""
    attributes = {str(k): str(v) for k, v in (row["attributes"] or {}).items()}
    attributes.update(
        event_id=str(row["id"]),
        event_type=row["event_type"],
        event_version=str(row["event_version"]),
        aggregate_type=row["aggregate_type"],
        aggregate_id=str(row["aggregate_id"]),
    )
    return attributes


def make_publisher(retry_deadline: float = 20.0) -> Any:
    """A publisher that keeps per-key order and gives up on an unreachable Pub/Sub after
    `retry_deadline` seconds (the row is retried later; the breaker notices the outage)."""
    from google.api_core.retry import Retry
    from google.cloud import pubsub_v1
    from google.cloud.pubsub_v1.types import BatchSettings, PublisherOptions

    return pubsub_v1.PublisherClient(
        batch_settings=BatchSettings(max_messages=500, max_latency=0.005),
        publisher_options=PublisherOptions(
            enable_message_ordering=True,
            retry=Retry(initial=0.1, maximum=2.0, multiplier=2, timeout=retry_deadline),
            timeout=min(retry_deadline, 10.0),
        ),
    )


class Relay:
    """One relay process. `run()` until `stop()` (or SIGTERM/SIGINT via `install_signals`)."""

    def __init__(self, config: RelayConfig, publisher: Any) -> None:
        import pybreaker

        self.config = config
        self.publisher = publisher
        with warnings.catch_warnings():  # `.api` is the GAPIC client: one Publish per batch
            warnings.simplefilter("ignore", DeprecationWarning)
            self._api = publisher.api
        self.stopping = threading.Event()
        self._storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=config.breaker_failures,
            reset_timeout=config.breaker_cooldown,
            state_storage=self._storage,
            exclude=[lambda e: not isinstance(e, PublishOutage)],
            name="pubsub",
        )
        self._work: Any = None
        self._listen: Any = None

    # --- lifecycle ------------------------------------------------------------------------------

    def install_signals(self) -> None:
        import signal

        def stop(signum: int, _frame: Any) -> None:
            log.info(json.dumps({"event": "stopping", "signal": signum}))
            self.stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def stop(self) -> None:
        self.stopping.set()

    def run(self, max_batches: int | None = None) -> int:
        """Relay until stopped; return the number of events published."""
        total = batches = 0
        self._connect()
        try:
            while not self.stopping.is_set():
                if self._breaker_open():
                    self._wait(self.config.poll_interval)
                    continue
                try:
                    result = self.run_once()
                except _DatabaseLost as lost:
                    log.warning(json.dumps({"event": "database_lost", "error": str(lost)}))
                    self._connect()
                    continue
                total += result.published
                batches += 1 if result.claimed else 0
                if max_batches is not None and batches >= max_batches:
                    break
                if result.claimed < self.config.batch_size:
                    self._wait(self.config.poll_interval)
        finally:
            self._close()
        return total

    # --- one batch ------------------------------------------------------------------------------

    def run_once(self) -> BatchResult:
        """Claim, publish, settle one batch. Never holds a transaction across Pub/Sub calls."""
        import pybreaker

        started = time.monotonic()
        rows = self._claim()
        result = BatchResult(claimed=len(rows))
        if not rows:
            return result
        try:
            outcomes = self.breaker.call(self._publish, rows)
        except (pybreaker.CircuitBreakerError, PublishOutage) as err:
            # Pub/Sub is down: nothing was published, and the rows' attempts are not used up
            self._settle(rows, dict.fromkeys((r["id"] for r in rows), err), False, result)
        else:
            self._settle(rows, outcomes, count_attempt=True, result=result)
        result.latency_ms = (time.monotonic() - started) * 1000
        log.info(json.dumps({"event": "batch", "relay": self.config.relay_id, **vars(result)}))
        return result

    def _claim(self) -> list[dict[str, Any]]:
        import psycopg
        from psycopg.rows import dict_row

        try:
            with self._work.transaction(), self._work.cursor(row_factory=dict_row) as cur:
                cur.execute(CLAIM_SQL, (self.config.batch_size,))
                ids = [r["id"] for r in cur.fetchall()]
                if not ids:
                    return []
                cur.execute(LEASE_SQL, (self.config.relay_id, self.config.lease_seconds, ids))
                rows = cur.fetchall()
        except psycopg.OperationalError as err:
            raise _DatabaseLost(err) from err
        rows.sort(key=lambda r: r["seq"])
        return rows

    def _publish(self, rows: list[dict[str, Any]]) -> dict[Any, Any]:
        """Publish every row; return id -> Pub/Sub message id or the exception it failed with.
        Raises PublishOutage when all failed transiently (that is what trips the breaker).

        The batch holds at most one row per ordering key (the claim takes only heads of keys)
        and the next row of a key is claimed only after this one is settled, so per-key order is
        kept by the relay itself. That lets a whole batch go out in a few Publish requests
        across many keys, where the client library's per-key sequencers would send one request
        per key. A request refused as invalid is retried message by message to find the bad one.
        """
        outcomes: dict[Any, Any] = {}
        ready: list[tuple[dict[str, Any], bytes, dict[str, str]]] = []
        for row in rows:
            data = json.dumps(row["payload"], separators=(",", ":")).encode()
            attributes = message_attributes(row)
            problem = unpublishable(data, attributes)
            if problem:
                outcomes[row["id"]] = MessageRefused(problem)
            else:
                ready.append((row, data, attributes))
        for chunk in _request_chunks(ready):
            outcomes.update(self._publish_request(chunk))
        failures = [e for e in outcomes.values() if isinstance(e, BaseException)]
        if len(failures) == len(rows) and not any(map(is_permanent, failures)):
            raise PublishOutage(f"{len(rows)} publishes failed: {_first_line(failures[0])}")
        return outcomes

    def _publish_request(
        self, chunk: list[tuple[dict[str, Any], bytes, dict[str, str]]]
    ) -> dict[Any, Any]:
        """One Publish request for `chunk`; all of it succeeds or fails together."""
        from google.api_core import exceptions as gexc
        from google.api_core.retry import Retry
        from google.pubsub_v1.types import PubsubMessage

        messages = [
            PubsubMessage(data=data, attributes=attributes, ordering_key=row["ordering_key"])
            for row, data, attributes in chunk
        ]
        timeout = self.config.publish_timeout
        try:
            response = self._api.publish(
                topic=self.config.topic_path,
                messages=messages,
                retry=Retry(initial=0.1, maximum=2.0, multiplier=2.0, timeout=timeout),
                timeout=min(timeout, 10.0),
            )
        except gexc.InvalidArgument:
            return self._publish_one_by_one(chunk)
        except Exception as err:  # unreachable, timed out, ...: the whole request failed
            return {row["id"]: err for row, _, _ in chunk}
        return {
            row["id"]: mid for (row, _, _), mid in zip(chunk, response.message_ids, strict=True)
        }

    def _publish_one_by_one(
        self, chunk: list[tuple[dict[str, Any], bytes, dict[str, str]]]
    ) -> dict[Any, Any]:
        """Isolate the message(s) Pub/Sub refuses, through the client's ordered publisher."""
        outcomes: dict[Any, Any] = {}
        for row, data, attributes in chunk:
            key = row["ordering_key"]
            try:
                future = self.publisher.publish(
                    self.config.topic_path, data, ordering_key=key, **attributes
                )
                outcomes[row["id"]] = future.result(timeout=self.config.publish_timeout)
            except Exception as err:  # recorded per row
                outcomes[row["id"]] = err
                if key:  # after a failed publish the client refuses this key until resumed
                    with contextlib.suppress(ValueError, RuntimeError):  # "not paused": no-op
                        self.publisher.resume_publish(self.config.topic_path, key)
        return outcomes

    def _settle(
        self,
        rows: list[dict[str, Any]],
        outcomes: dict[Any, Any],
        count_attempt: bool,
        result: BatchResult,
    ) -> None:
        import psycopg

        published_ids, message_ids = [], []
        retry_ids, errors, delays, bumps = [], [], [], []
        fail_ids, reasons = [], []
        for row in rows:
            outcome = outcomes[row["id"]]
            if not isinstance(outcome, BaseException):
                published_ids.append(row["id"])
                message_ids.append(str(outcome))
                continue
            attempt = row["retry_count"] + (1 if count_attempt else 0)
            if count_attempt and (is_permanent(outcome) or attempt >= self.config.max_attempts):
                fail_ids.append(row["id"])
                reasons.append(_first_line(outcome))
                continue
            retry_ids.append(row["id"])
            errors.append(_first_line(outcome))
            delays.append(backoff_seconds(max(attempt, 1), self.config))
            bumps.append(1 if count_attempt else 0)
        relay = self.config.relay_id
        try:
            with self._work.transaction(), self._work.cursor() as cur:
                if published_ids:
                    cur.execute(PUBLISHED_SQL, (published_ids, message_ids, relay))
                if retry_ids:
                    cur.execute(RETRY_SQL, (retry_ids, errors, delays, bumps, relay))
                if fail_ids:
                    cur.execute(FAIL_SQL, (fail_ids, reasons, relay))
        except psycopg.OperationalError as err:
            raise _DatabaseLost(err) from err
        result.published += len(published_ids)
        result.retried += len(retry_ids)
        result.failed += len(fail_ids)

    # --- connections and waiting ----------------------------------------------------------------

    def _connect(self) -> None:
        """(Re)open the work and LISTEN connections, retrying with backoff until stopped."""
        import psycopg
        from tenacity import (
            Retrying,
            retry_if_exception_type,
            stop_when_event_set,
            wait_random_exponential,
        )

        self._close()
        for attempt in Retrying(
            retry=retry_if_exception_type(psycopg.OperationalError),
            wait=wait_random_exponential(multiplier=0.2, max=10),
            stop=stop_when_event_set(self.stopping),
            reraise=True,
        ):
            with attempt:
                self._work = psycopg.connect(self.config.database_url, connect_timeout=5)
                self._listen = psycopg.connect(
                    self.config.database_url, autocommit=True, connect_timeout=5
                )
                self._listen.execute(f"LISTEN {NOTIFY_CHANNEL}")
        if self._work is not None:
            self._release_own_leases()

    def _release_own_leases(self) -> None:
        with self._work.transaction():
            self._work.execute(RELEASE_SQL, (self.config.relay_id,))

    def _close(self) -> None:
        for conn in (self._work, self._listen):
            if conn is not None:
                with contextlib.suppress(Exception):  # closing a dead connection
                    conn.close()
        self._work = self._listen = None

    def _wait(self, seconds: float) -> None:
        """Sleep until a NOTIFY arrives, `seconds` pass, or we are stopping."""
        if self._listen is None:
            self.stopping.wait(seconds)
            return
        deadline = time.monotonic() + seconds
        try:
            while not self.stopping.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                for _ in self._listen.notifies(timeout=min(remaining, 0.25), stop_after=1):
                    return
        except Exception:
            self._listen = None
            self.stopping.wait(max(0.0, deadline - time.monotonic()))

    def _breaker_open(self) -> bool:
        """True while the breaker is open and its cool-down has not passed (rows just wait)."""
        if self.breaker.current_state != "open":
            return False
        opened = self._storage.opened_at or datetime.now(UTC)
        if opened.tzinfo is None:
            opened = opened.replace(tzinfo=UTC)
        return datetime.now(UTC) < opened + timedelta(seconds=self.config.breaker_cooldown)


MAX_REQUEST_MESSAGES = 1000
MAX_REQUEST_BYTES = 9_000_000  # under Pub/Sub's 10 MB request limit, with room for overhead


def _request_chunks(items: list[tuple[dict[str, Any], bytes, dict[str, str]]]) -> list[list]:
    """Split messages into Publish requests within Pub/Sub's per-request limits."""
    chunks: list[list] = []
    current: list = []
    size = 0
    for item in items:
        _, data, attributes = item
        item_size = len(data) + sum(len(k) + len(v) for k, v in attributes.items()) + 64
        if current and (
            len(current) >= MAX_REQUEST_MESSAGES or size + item_size > MAX_REQUEST_BYTES
        ):
            chunks.append(current)
            current, size = [], 0
        current.append(item)
        size += item_size
    if current:
        chunks.append(current)
    return chunks


class _DatabaseLost(Exception):
    """The database connection broke mid-batch; the loop reconnects and carries on."""


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:500]
