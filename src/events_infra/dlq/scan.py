"""Walking a dead-letter subscription once, whatever the caller does with each message.

Pulled messages are either acknowledged (gone) or released at once (ack deadline 0), never held
until their deadline. Released messages come straight back in later pulls, so the scan keeps the
ids it has seen and ends when pulls have returned nothing new for a while: at least
`quiet_pulls` pulls over at least `quiet_seconds`, backing off between them. One or two empty
pulls prove nothing: Pub/Sub may answer a pull with fewer messages than exist, even none
(`PullRequest.max_messages`), so a scan that stopped there could leave letters behind. When the
backlog count is known (`expected`) the count decides instead: the scan ends once it has seen
that many and a pull brings nothing new, and keeps looking (up to its budget) while it has not.

While the caller holds messages (a replay waiting for Pub/Sub to confirm copies), a keeper thread
extends their ack deadlines every third of the deadline: Pub/Sub drops an ack sent after the
deadline without error, so a message held too long would be counted as replayed and yet come
back. `ack` reports which acks went out in time.

With `prefetch`, a puller thread keeps that many batches pulled ahead while the caller works on
the current one (a replay publishing): pulls, publishes and acks overlap instead of taking turns.
Letters pulled ahead are held like any other (their deadlines kept, released at the end).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from events_infra.dlq.messages import DeadLetter
from events_infra.pubsub.api_calls import ack_id_chunks, modify_deadlines

PREFETCH_BATCHES = 2
"""Batches a replay, purge or export keeps pulled ahead while it works on the current one."""
CALL_TIMEOUT_S = 10.0
"""Deadline of each acknowledge / modify-deadline call (the client's default is 60 s)."""


@dataclass
class ScanStats:
    pulls: int = 0
    distinct: int = 0
    acknowledged: int = 0
    released: int = 0
    extended: int = 0
    late: int = 0
    """Acks sent after the message's deadline (Pub/Sub ignores them; the message comes back)."""


SCAN_BUDGET_S = 30.0
"""How long a scan that has seen fewer letters than the backlog count keeps pulling without
finding anything new before it stops and reports how many may remain."""


class Scanner:
    """Yields batches of not-yet-seen dead letters; the caller must `ack` or `release` each
    one (anything it does not is released when the scan ends)."""

    def __init__(
        self,
        subscriber: Any,
        subscription: str,
        batch_size: int = 100,
        pull_timeout: float = 2.0,
        quiet_pulls: int = 3,
        quiet_seconds: float = 1.5,
        ack_deadline_s: int = 10,
        expected: int | None = None,
        budget_s: float | None = None,
        covers: Callable[[DeadLetter], bool] | None = None,
    ) -> None:
        """`ack_deadline_s`: the deadline held messages are kept at (10 s, Pub/Sub's minimum,
        is right for any subscription: the keeper sets it explicitly). `expected`: how many
        messages the subscription held when the scan began (Monitoring's estimate, or a count):
        while fewer have been seen the scan keeps looking, for at most `budget_s` seconds of
        pulls that bring nothing new. `covers`: which fresh messages belong to what the scan
        must cover (default: all); others are handed out too but do not keep it going, so a
        scan of a live subscription (`subscription migrate`) ends although publishers keep
        adding messages."""
        self.subscriber = subscriber
        self.subscription = subscription
        self.batch_size = max(1, min(batch_size, 1000))
        self.pull_timeout = pull_timeout
        self.quiet_pulls = quiet_pulls
        self.quiet_seconds = quiet_seconds
        self.expected = expected
        self.budget_s = SCAN_BUDGET_S if budget_s is None else budget_s
        self.stats = ScanStats()
        self.ack_deadline_s = max(10, ack_deadline_s)
        self._seen: set[str] = set()
        self._covers = covers
        self._covered_count = 0  # fresh messages that `covers` counted
        self._outstanding: dict[str, str] = {}  # message id -> ack id, not yet acked/released
        self._deadlines: dict[str, float] = {}  # ack id -> monotonic time its deadline passes
        self._lock = threading.RLock()
        self._stop_keeper = threading.Event()

    def batches(
        self, prefetch: int = 0, before_release: Callable[[], None] | None = None
    ) -> Iterator[list[DeadLetter]]:
        """Fresh letters, batch by batch; with `prefetch`, pulled that many batches ahead by
        a thread of their own. However the scan ends (covered, stopped early, an error,
        Ctrl-C), `before_release` runs first — a caller acknowledging in the background
        finishes there, while deadlines are still kept — and then every letter still held is
        released."""
        keeper = threading.Thread(target=self._keep, name="dlq-deadlines", daemon=True)
        keeper.start()
        try:
            if prefetch > 0:
                yield from self._ahead(prefetch)
            else:
                yield from self._fresh()
        finally:
            try:
                if before_release is not None:
                    before_release()
            finally:  # even if a second Ctrl-C cuts that short
                self._stop_keeper.set()
                keeper.join(5)
                self.release_outstanding()

    def _fresh(self, halt: threading.Event | None = None) -> Iterator[list[DeadLetter]]:
        """The pull loop: batches of letters not seen before, until the backlog is covered."""
        halt = halt or threading.Event()
        unproductive, quiet_since, pause = 0, time.monotonic(), 0.05
        while not self._covered(unproductive, time.monotonic() - quiet_since):
            if halt.is_set():
                return
            pulled_at = time.monotonic()
            fresh: list[DeadLetter] = []
            repeats: list[str] = []
            for item in self._pull():
                letter = DeadLetter.from_received(item)
                if letter.message_id in self._seen:
                    repeats.append(letter.ack_id)
                else:
                    self._seen.add(letter.message_id)
                    fresh.append(letter)
            with self._lock:
                for letter in fresh:
                    self._outstanding[letter.message_id] = letter.ack_id
                    self._deadlines[letter.ack_id] = pulled_at + self.ack_deadline_s
            self._modify(repeats)
            counted = len(fresh) if self._covers is None else sum(map(self._covers, fresh))
            self._covered_count += counted
            self.stats.distinct += len(fresh)
            if counted:
                unproductive, quiet_since, pause = 0, time.monotonic(), 0.05
            if fresh:
                yield fresh
            if not counted:  # nothing new (that counts): back off and look again
                unproductive += 1
                if halt.wait(pause):
                    return
                pause = min(pause * 2, 1.0)

    def _ahead(self, depth: int) -> Iterator[list[DeadLetter]]:
        """`_fresh` run by a puller thread, at most `depth` batches ahead of the caller. Its
        failure is raised here; when the caller stops early the thread is stopped and joined
        (each pull has a deadline) before anything is released."""
        ready: queue.Queue[Any] = queue.Queue(maxsize=depth)
        halt = threading.Event()
        end = object()

        def hand_over(item: Any) -> bool:
            while not halt.is_set():
                try:
                    ready.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def pull() -> None:
            try:
                for batch in self._fresh(halt):
                    if not hand_over(batch):
                        return
                hand_over(end)
            except BaseException as err:  # handed to the caller, raised in its thread
                hand_over(err)

        puller = threading.Thread(target=pull, name="dlq-puller", daemon=True)
        puller.start()
        try:
            while (item := ready.get()) is not end:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            halt.set()
            puller.join(self.pull_timeout + 10)

    def _covered(self, unproductive: int, quiet_for: float) -> bool:
        """Seen everything (as far as pulls can tell). With a backlog count: that many seen and
        a pull that brought nothing new (what arrives later is not this run's to cover), or,
        short of it, the budget spent. Without: enough unproductive pulls over enough time."""
        if self.expected is not None and self._covered_count >= self.expected:
            return unproductive >= 1  # the counted backlog is covered; nothing else waiting
        if unproductive < self.quiet_pulls or quiet_for < self.quiet_seconds:
            return False
        if self.expected is not None:
            return quiet_for >= self.budget_s
        return True

    @property
    def possibly_remaining(self) -> int | None:
        """How many of the expected messages the scan never saw (None: no expectation)."""
        if self.expected is None:
            return None
        return max(0, self.expected - self._covered_count)

    def ack(self, letters: Iterable[DeadLetter]) -> set[str]:
        """Acknowledge; return the message ids whose ack went out before their deadline (the
        others will come back: Pub/Sub ignores a late ack)."""
        letters = list(letters)
        with self._lock:
            now = time.monotonic()
            in_time = {
                letter.message_id
                for letter in letters
                if self._deadlines.get(self._outstanding.get(letter.message_id, ""), 0) > now
            }
            ids = self._take(letters)
        try:
            for chunk in ack_id_chunks(ids):
                self.subscriber.acknowledge(
                    subscription=self.subscription, ack_ids=chunk, timeout=CALL_TIMEOUT_S
                )
        except Exception:  # refused or unknown: hand them back now rather than at the deadline
            with contextlib.suppress(Exception):
                self._modify(ids)
            raise
        self.stats.acknowledged += len(ids)
        self.stats.late += len(ids) - len(in_time)
        return in_time

    def _keep(self) -> None:
        """Extend the deadlines of held messages every third of the deadline."""
        period = self.ack_deadline_s / 3
        while not self._stop_keeper.wait(period):
            with self._lock:
                held = list(self._outstanding.values())
            if not held:
                continue
            started = time.monotonic()
            with contextlib.suppress(Exception):  # a failed extension shows up as a late ack
                modify_deadlines(
                    self.subscriber, self.subscription, held, self.ack_deadline_s, period
                )
                with self._lock:
                    for ack_id in held:
                        if ack_id in self._deadlines:
                            self._deadlines[ack_id] = started + self.ack_deadline_s
                self.stats.extended += len(held)

    def release(self, letters: Iterable[DeadLetter]) -> None:
        ids = self._take(letters)
        self._modify(ids)
        self.stats.released += len(ids)

    def release_outstanding(self) -> None:
        with self._lock:
            ids = list(self._outstanding.values())
            self._outstanding.clear()
            self._deadlines.clear()
        self._modify(ids)
        self.stats.released += len(ids)

    def _take(self, letters: Iterable[DeadLetter]) -> list[str]:
        with self._lock:
            ids = [
                self._outstanding.pop(letter.message_id)
                for letter in letters
                if letter.message_id in self._outstanding
            ]
            for ack_id in ids:
                self._deadlines.pop(ack_id, None)
        return ids

    def _modify(self, ack_ids: list[str]) -> None:
        modify_deadlines(self.subscriber, self.subscription, ack_ids, 0, CALL_TIMEOUT_S)

    def _pull(self) -> list[Any]:
        from google.api_core.exceptions import DeadlineExceeded

        self.stats.pulls += 1
        try:
            response = self.subscriber.pull(
                subscription=self.subscription,
                max_messages=self.batch_size,
                timeout=self.pull_timeout,
            )
        except DeadlineExceeded:  # the emulator holds an empty pull until its deadline
            return []
        return list(getattr(response, "_pb", response).received_messages)  # raw: see DeadLetter


def paced_batch_size(batch_size: int, rate: float | None, ack_deadline_s: int) -> int:
    """With a rate, never pull more than can be published well inside the ack deadline (a
    third of it), so no pulled message waits out its deadline before its turn."""
    if not rate:
        return batch_size
    return max(1, min(batch_size, int(rate * ack_deadline_s / 3)))
