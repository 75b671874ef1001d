"""The outbox relay: every committed event to Pub/Sub, in order per ordering key, none lost.

One loop, safe to run in several processes at once, that never waits for a whole batch:

1. claim in a short transaction, while there is room in flight (keys and bytes,
   `outbox.relay_flights`): for each ordering key whose head is past the commit-visibility fence,
   due and unleased, up to `per_key` consecutive rows (`outbox.queries.CLAIM_SQL`), leased to
   this relay; commit;
2. start each key's run on a thread of its own, outside any transaction: one Publish request per
   ordering key at a time (what production accepts; `pubsub.key_publisher`), many keys at once;
3. settle, in one short transaction, whatever runs have been answered since the last settle,
   only rows this relay still leases: published, retry later (exponential backoff with jitter),
   or moved to `event_outbox_failed` for good; the key's next rows become its head, claimable;
4. renew the leases of what is still in flight every third of a lease;
5. claim again at once while claims find work and there is room; otherwise wait for a run to be
   answered, a NOTIFY, or the poll interval (a lost notification costs at most one interval).

A slow or failing request holds back its own key only: the other keys keep being claimed and
published around it. A circuit breaker (pybreaker) stops claiming while Pub/Sub keeps failing
and lets one claim probe after a cool-down; rows simply wait. A lost database connection is
re-opened with backoff (tenacity), keeping the leases of what is in flight. SIGTERM/SIGINT stop
claiming and sending; requests on the wire finish (within `publish_timeout`) and are settled,
rows not yet sent are released with no attempt spent, then the loop returns.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from events_infra.outbox.queries import (
    CLAIM_SQL,
    FAIL_SQL,
    LEASE_SQL,
    PUBLISHED_SQL,
    RELEASE_SQL,
    RENEW_SQL,
    RETRY_SQL,
    UNLEASE_SQL,
)
from events_infra.outbox.relay_config import BatchResult, RelayConfig
from events_infra.outbox.relay_connections import DatabaseLost, RelayConnections
from events_infra.outbox.relay_flights import Flights, Run, runs_of
from events_infra.outbox.relay_outcomes import (
    PublishOutage,
    backoff_seconds,
    is_permanent,
    outage,
    settlement,
)
from events_infra.pubsub.key_publisher import KeyPublisher, make_publisher
from events_infra.pubsub.publish_requests import MessageRefused

__all__ = [
    "BatchResult",
    "MessageRefused",
    "PublishOutage",
    "Relay",
    "RelayConfig",
    "backoff_seconds",
    "is_permanent",
    "make_publisher",
]

log = logging.getLogger(__name__)

SETTLE_ROWS = 200
SETTLE_AFTER_S = 0.01
"""Answered runs are settled together once this many rows are answered or this long after
the first of them (`Relay._settle_answered`)."""


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
        self.flights = Flights(
            self.publisher,
            wire=config.publish_concurrency,
            max_keys=2 * config.publish_concurrency,  # one wire's worth claimed ahead, no more:
            # a relay that hoarded a backlog behind its threads would leave other relays idle
            max_bytes=config.claim_bytes,
        )
        self._answered: list[Run] = []
        self._answered_since = 0.0
        self._storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=config.breaker_failures,
            reset_timeout=config.breaker_cooldown,
            state_storage=self._storage,
            exclude=[lambda e: not isinstance(e, PublishOutage)],
            name="pubsub",
        )
        self.totals: Counter[str] = Counter()
        """published / retried / failed since start (the relay's metrics report them)."""
        self.heartbeat = time.monotonic()
        """When the loop last went round (claimed, waited or recovered): the health check's
        evidence that the relay is not stuck."""
        self._renewed = time.monotonic()
        self.db = RelayConnections(config.database_url, self.stopping)

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
        """Relay until stopped (or until `max_batches` claims found work and were settled);
        return the number of events published."""
        published_before = self.totals["published"]
        claims = 0
        self._connect()
        try:
            while not self.stopping.is_set():
                self.heartbeat = time.monotonic()
                try:
                    self._settle_answered(self.flights.finished())
                    self._renew_leases()
                    claimed = 0
                    if self._may_claim() and (max_batches is None or claims < max_batches):
                        claimed = self._claim_and_start()
                    claims += 1 if claimed else 0
                    if max_batches is not None and claims >= max_batches and not self.flights:
                        break
                    if not claimed:
                        self._wait(self.config.poll_interval)
                except DatabaseLost as lost:
                    log.warning(json.dumps({"event": "database_lost", "error": str(lost)}))
                    self._connect()
            self._drain()
        finally:
            self._close()
            self.flights.close()
            self.publisher.close()
        return self.totals["published"] - published_before

    def _settle_answered(self, runs: list[Run], now: bool = False) -> None:
        """Settle answered runs in groups: once SETTLE_ROWS rows are answered, SETTLE_AFTER_S
        after the first of them, when nothing else is in flight, or `now`. One settle costs
        about the same for 1 row as for 100, and a key's next rows wait for it only that long."""
        if runs and not self._answered:
            self._answered_since = time.monotonic()
        self._answered += runs
        if not self._answered:
            return
        rows = sum(len(run.rows) for run in self._answered)
        due = time.monotonic() - self._answered_since >= SETTLE_AFTER_S
        if now or due or rows >= SETTLE_ROWS or not self.flights:
            self._settle_runs(self._answered)  # kept until settled: a lost database retries
            self._answered = []

    def _drain(self) -> None:
        """Stopping: wait for the requests on the wire (each ends within `publish_timeout`;
        runs not yet sent come back at once as not attempted) and settle them. Rows of a run
        that does not come back in time stay leased and are published again after the lease:
        a duplicate, deduped by event_id, never a loss."""
        deadline = time.monotonic() + self.config.publish_timeout + 2.0
        while (self.flights or self._answered) and time.monotonic() < deadline:
            wait = min(0.5, max(0.01, deadline - time.monotonic())) if self.flights else 0.0
            done = self.flights.finished(wait=wait)
            try:
                self._settle_answered(done, now=True)
            except DatabaseLost as lost:
                log.warning(json.dumps({"event": "database_lost", "error": str(lost)}))
                return

    # --- claiming -------------------------------------------------------------------------------

    def _may_claim(self) -> bool:
        """Room in flight, and Pub/Sub not known to be down. Under load it claims once the runs
        held no longer fill every thread, up to a wire's worth of keys at a time, so claims
        stay large (one claim's cost is mostly fixed) and the wire never runs dry."""
        if self.flights.bytes_free() <= 0 or self.flights.keys_free() <= 0:
            return False
        if self._breaker_open():
            return False
        if self.breaker.current_state != "closed" and self.flights:
            return False  # the probe after a cool-down is one claim, not several
        return len(self.flights) < self.flights.wire

    def _claim_and_start(self) -> int:
        """Claim what there is room for and start publishing it; the number of rows claimed."""
        rows = self._claim(self.flights.keys_free(), self.flights.bytes_free())
        stray = []
        for run in runs_of(rows):
            if self.flights.holds(run.key):  # cannot happen while our leases hold; order first
                stray += [row["id"] for row in run.rows]
                continue
            self.flights.start(run)
        if stray:
            self.db.execute([(UNLEASE_SQL, (stray, self.config.relay_id))])
        return len(rows)

    def _claim(self, keys: int | None = None, max_bytes: int | None = None) -> list[dict[str, Any]]:
        """Lease up to `batch_size` rows over at most `keys` keys and `max_bytes` bytes."""
        from psycopg.rows import dict_row

        with self.db.cursor(row_factory=dict_row) as cur:
            cur.execute(
                CLAIM_SQL,
                {
                    "batch": self.config.batch_size,
                    "keys": min(self.config.batch_size, keys or self.config.batch_size),
                    "per_key": self.config.per_key,
                    "max_bytes": max_bytes or self.config.claim_bytes,
                },
            )
            ids = [r["id"] for r in cur.fetchall()]
            if not ids:
                return []
            cur.execute(LEASE_SQL, (self.config.relay_id, self.config.lease_seconds, ids))
            rows = cur.fetchall()
        rows.sort(key=lambda r: r["seq"])
        return rows

    def _renew_leases(self) -> None:
        """Every third of a lease: extend the leases of every row still in flight."""
        if time.monotonic() - self._renewed < self.config.lease_seconds / 3:
            return
        self._renewed = time.monotonic()
        held = self._held_ids()
        if not held:
            return
        renewed = self.db.execute(
            [(RENEW_SQL, (self.config.lease_seconds, held, self.config.relay_id))], returning=True
        )
        if len(renewed) < len(held):  # our loop stalled past a lease: settle skips those rows
            log.warning(json.dumps({"event": "lease_lost", "rows": len(held) - len(renewed)}))

    def _held_ids(self) -> list[Any]:
        """Rows claimed and not settled: publishing, waiting for a thread, or answered."""
        return self.flights.held_ids() + [r["id"] for run in self._answered for r in run.rows]

    # --- one batch ------------------------------------------------------------------------------

    def run_once(self) -> BatchResult:
        """Claim one batch, publish it, wait for all of it, settle it (scripts and tests; the
        loop in `run` never waits for a whole batch). Never holds a transaction across Pub/Sub."""
        rows = self._claim()
        if not rows:
            return BatchResult()
        for run in runs_of(rows):
            self.flights.start(run)
        done: list[Run] = []
        while self.flights:
            done += self.flights.finished(wait=0.5)
        return self._settle_runs(done)

    def _settle_runs(self, runs: list[Run]) -> BatchResult:
        """Settle answered runs together; tell the breaker whether Pub/Sub looked down."""
        import pybreaker

        result = BatchResult(claimed=sum(len(run.rows) for run in runs))
        if not runs:
            return result
        started = time.monotonic()
        rows = [row for run in runs for row in run.rows]
        outcomes = {k: v for run in runs for k, v in run.outcomes.items()}
        down = outage(rows, outcomes)
        try:
            if down is not None:
                self.breaker.call(_raise, down)
            elif not self._breaker_open():
                self.breaker.call(lambda: None)  # a success closes a half-open breaker
        except (pybreaker.CircuitBreakerError, PublishOutage) as err:
            # Pub/Sub is down: nothing was published, and the rows' attempts are not used up.
            # The breaker's own error would hide why; the rows keep the outage's reason.
            reason = down or err
            self._settle(rows, dict.fromkeys((r["id"] for r in rows), reason), False, result)
        else:
            self._settle(rows, outcomes, count_attempt=True, result=result)
        result.latency_ms = round((time.monotonic() - started) * 1000, 1)
        self.totals.update(published=result.published, retried=result.retried, failed=result.failed)
        line = {"event": "batch", "relay": self.config.relay_id, **vars(result)}
        line["in_flight"] = len(self.flights)
        if result.error is None:
            line.pop("error")
        (log.warning if result.error else log.info)(json.dumps(line))
        return result

    def _settle(
        self,
        rows: list[dict[str, Any]],
        outcomes: dict[Any, Any],
        count_attempt: bool,
        result: BatchResult,
    ) -> None:
        """Write what becomes of each row (`relay_outcomes.settlement`) in one transaction,
        only for rows this relay still leases."""
        plan = settlement(rows, outcomes, count_attempt, self.config)
        relay = self.config.relay_id
        candidates = [
            (PUBLISHED_SQL, (plan.published_ids, plan.message_ids, relay), plan.published_ids),
            (
                RETRY_SQL,
                (plan.retry_ids, plan.errors, plan.delays, plan.bumps, relay),
                plan.retry_ids,
            ),
            (FAIL_SQL, (plan.fail_ids, plan.reasons, relay), plan.fail_ids),
            (UNLEASE_SQL, (plan.unlease_ids, relay), plan.unlease_ids),
        ]
        statements = [(sql, params) for sql, params, ids in candidates if ids]
        self.db.execute(statements)
        if result.error is None:
            result.error = plan.first_error
        result.keys = len({r["ordering_key"] for r in rows})
        result.published += len(plan.published_ids)
        result.retried += len(plan.retry_ids)
        result.failed += len(plan.fail_ids)

    # --- connections and waiting ----------------------------------------------------------------

    def _connect(self) -> None:
        """(Re)open the connections; then give back leases our previous connection left."""
        if self.db.open():
            self.db.execute([(RELEASE_SQL, (self.config.relay_id, self._held_ids()))])

    def _close(self) -> None:
        self.db.close()

    def _wait(self, seconds: float) -> None:
        """Sleep until a run in flight is answered (it is settled here), a NOTIFY arrives,
        `seconds` pass, or we are stopping. With runs in flight it looks at both every 10 ms,
        so neither an answer nor new work waits long for the other."""
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set():
            if self.flights or self._answered:
                done = self.flights.finished(wait=0.01)
                self._settle_answered(done)
                if done:
                    return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self.db.notified(min(remaining, 0.01 if self.flights else 0.25)):
                return

    def _breaker_open(self) -> bool:
        """True while the breaker is open and its cool-down has not passed (rows just wait)."""
        if self.breaker.current_state != "open":
            return False
        opened = self._storage.opened_at or datetime.now(UTC)
        if opened.tzinfo is None:
            opened = opened.replace(tzinfo=UTC)
        return datetime.now(UTC) < opened + timedelta(seconds=self.config.breaker_cooldown)


def _raise(error: BaseException) -> None:
    raise error
