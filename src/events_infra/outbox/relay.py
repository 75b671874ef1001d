"""The outbox relay: every committed event to Pub/Sub, in order per ordering key, none lost.

One loop, safe to run in several processes at once:

1. wait for a NOTIFY (or the poll interval, whichever comes first; a lost notification or a
   dropped LISTEN connection costs at most one interval);
2. claim a batch in a short transaction: for each ordering key whose head is past the
   commit-visibility fence, due and unleased, up to `per_key` consecutive rows
   (`outbox.queries.CLAIM_SQL`), leased to this relay; commit;
3. publish outside any transaction: one Publish request per ordering key (what production
   accepts), many keys at once (`outbox.key_publisher`);
4. settle in one short transaction, only rows this relay still leases: published, retry later
   (exponential backoff with jitter), or moved to `event_outbox_failed` for good;
5. claim again at once while claims find work; wait (1.) only when a claim comes back empty.

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
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from events_infra.errors import EventsInfraError, first_line
from events_infra.outbox.enqueue import NOTIFY_CHANNEL
from events_infra.outbox.queries import (
    CLAIM_SQL,
    FAIL_SQL,
    LEASE_SQL,
    PUBLISHED_SQL,
    RELEASE_SQL,
    RETRY_SQL,
    UNLEASE_SQL,
)
from events_infra.pubsub.key_publisher import KeyPublisher, NotAttempted, make_publisher
from events_infra.pubsub.publish_requests import MessageRefused, by_key

__all__ = ["BatchResult", "MessageRefused", "Relay", "RelayConfig", "make_publisher"]

log = logging.getLogger(__name__)


@dataclass
class RelayConfig:
    database_url: str
    topic_path: str
    batch_size: int = 500
    """Rows claimed per batch, over all keys."""
    claim_bytes: int = 32 * 1024 * 1024
    """Bytes of events claimed per batch (at least one row): what the relay holds at once is
    a few times this, so its memory is sized from it (`stack_config.relay_config`)."""
    per_key: int = 100
    """Consecutive rows of one ordering key claimed together (and sent in one request)."""
    publish_concurrency: int = 32
    """Keys published at once."""
    lease_seconds: float = 60.0
    poll_interval: float = 1.0
    max_attempts: int = 20
    """Failed publishes before a row is moved to event_outbox_failed."""
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    breaker_failures: int = 3
    """Consecutive batches that all failed before the breaker opens."""
    breaker_cooldown: float = 30.0
    publish_timeout: float = 20.0
    """Seconds one Publish (with its retries) may take before the rows are retried later."""
    relay_id: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    )


@dataclass
class BatchResult:
    claimed: int = 0
    published: int = 0
    retried: int = 0
    failed: int = 0
    keys: int = 0
    latency_ms: float = 0.0
    error: str | None = None
    """The first failure of the batch, as Pub/Sub (or the client) put it."""


class PublishOutage(EventsInfraError):
    """Every publish of a batch failed with a transient error: Pub/Sub looks unreachable."""


def is_permanent(error: BaseException) -> bool:
    """Errors no retry will fix: the message itself is unacceptable (size, attributes)."""
    from google.api_core import exceptions as gexc

    return isinstance(error, gexc.InvalidArgument | ValueError | TypeError)


def backoff_seconds(attempt: int, config: RelayConfig) -> float:
    """Exponential backoff with full jitter in [50 %, 100 %] of the step."""
    step = min(config.backoff_max, config.backoff_base * (2 ** max(0, attempt - 1)))
    return step * random.uniform(0.5, 1.0)


class Relay:
    """One relay process. `run()` until `stop()` (or SIGTERM/SIGINT via `install_signals`)."""

    def __init__(self, config: RelayConfig, publisher: Any) -> None:
        """`publisher`: the Pub/Sub publisher API client (`make_publisher()`)."""
        import pybreaker

        self.config = config
        self.stopping = threading.Event()
        self.publisher = KeyPublisher(
            publisher,
            config.topic_path,
            config.publish_concurrency,
            config.publish_timeout,
            stop=self.stopping,
        )
        self._storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=config.breaker_failures,
            reset_timeout=config.breaker_cooldown,
            state_storage=self._storage,
            exclude=[lambda e: not isinstance(e, PublishOutage)],
            name="pubsub",
        )
        self._last_outage: PublishOutage | None = None
        self.totals: Counter[str] = Counter()
        """published / retried / failed since start (the relay's metrics report them)."""
        self.heartbeat = time.monotonic()
        """When the loop last went round (claimed, waited or recovered): the health check's
        evidence that the relay is not stuck."""
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
                self.heartbeat = time.monotonic()
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
                if not result.claimed:
                    self._wait(self.config.poll_interval)
        finally:
            self._close()
            self.publisher.close()
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
            # Pub/Sub is down: nothing was published, and the rows' attempts are not used up.
            # The breaker's own error would hide why; the rows keep the outage's reason.
            reason = err if isinstance(err, PublishOutage) else self._last_outage or err
            self._settle(rows, dict.fromkeys((r["id"] for r in rows), reason), False, result)
        else:
            self._settle(rows, outcomes, count_attempt=True, result=result)
        result.latency_ms = round((time.monotonic() - started) * 1000, 1)
        self.totals.update(published=result.published, retried=result.retried, failed=result.failed)
        line = {"event": "batch", "relay": self.config.relay_id, **vars(result)}
        if result.error is None:
            line.pop("error")
        (log.warning if result.error else log.info)(json.dumps(line))
        return result

    def _claim(self) -> list[dict[str, Any]]:
        import psycopg
        from psycopg.rows import dict_row

        try:
            with self._work.transaction(), self._work.cursor(row_factory=dict_row) as cur:
                cur.execute(
                    CLAIM_SQL,
                    {
                        "batch": self.config.batch_size,
                        "per_key": self.config.per_key,
                        "max_bytes": self.config.claim_bytes,
                    },
                )
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
        Raises PublishOutage when nothing went out and every failure was transient (that is
        what trips the breaker)."""
        groups, outcomes = by_key(rows)
        outcomes.update(self.publisher.publish(groups))
        failures = [e for e in outcomes.values() if isinstance(e, BaseException)]
        tried = [e for e in failures if not isinstance(e, NotAttempted)]
        if len(failures) == len(rows) and tried and not any(map(is_permanent, tried)):
            self._last_outage = PublishOutage(
                f"Pub/Sub unreachable: {len(rows)} publishes failed: {first_line(tried[0], 500)}"
            )
            raise self._last_outage
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
        fail_ids, reasons, unlease_ids = [], [], []
        for row in rows:
            outcome = outcomes[row["id"]]
            if not isinstance(outcome, BaseException):
                published_ids.append(row["id"])
                message_ids.append(str(outcome))
                continue
            if isinstance(outcome, NotAttempted):
                unlease_ids.append(row["id"])
                continue
            if result.error is None:
                result.error = first_line(outcome, 500)
            attempt = row["retry_count"] + (1 if count_attempt else 0)
            if count_attempt and (is_permanent(outcome) or attempt >= self.config.max_attempts):
                fail_ids.append(row["id"])
                reasons.append(first_line(outcome, 500))
                continue
            retry_ids.append(row["id"])
            errors.append(first_line(outcome, 500))
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
                if unlease_ids:
                    cur.execute(UNLEASE_SQL, (unlease_ids, relay))
        except psycopg.OperationalError as err:
            raise _DatabaseLost(err) from err
        result.keys = len({r["ordering_key"] for r in rows})
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

        def unreachable(state: Any) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.warning(
                json.dumps(
                    {
                        "event": "database_unreachable",
                        "attempt": state.attempt_number,
                        "error": first_line(error) if error else "",
                        "retry_in_s": round(state.upcoming_sleep, 1),
                    }
                )
            )

        try:
            for attempt in Retrying(
                retry=retry_if_exception_type(psycopg.OperationalError),
                wait=wait_random_exponential(multiplier=0.2, max=10),
                stop=stop_when_event_set(self.stopping),
                before_sleep=unreachable,
                reraise=True,
            ):
                with attempt:
                    self._work = psycopg.connect(self.config.database_url, connect_timeout=5)
                    self._listen = psycopg.connect(
                        self.config.database_url, autocommit=True, connect_timeout=5
                    )
                    self._listen.execute(f"LISTEN {NOTIFY_CHANNEL}")
        except psycopg.OperationalError:
            if not self.stopping.is_set():
                raise
            self._close()  # asked to stop while waiting for the database: nothing to settle
            return
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


class _DatabaseLost(Exception):
    """The database connection broke mid-batch; the loop reconnects and carries on."""
