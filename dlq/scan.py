"""Walking a dead-letter subscription once, whatever the caller does with each message.

Pulled messages are either acknowledged (gone) or released at once (ack deadline 0), never held
until their deadline. Released messages come straight back in later pulls, so the scan keeps the
ids it has seen and ends when pulls have returned nothing new for a while: at least
`quiet_pulls` pulls over at least `quiet_seconds`, backing off between them. One or two empty
pulls prove nothing: Pub/Sub may answer a pull with fewer messages than exist, even none
(`PullRequest.max_messages`), so a scan that stopped there could leave letters behind.

While the caller holds messages (a replay waiting for Pub/Sub to confirm copies), a keeper thread
extends their ack deadlines every third of the deadline: Pub/Sub drops an ack sent after the
deadline without error, so a message held too long would be counted as replayed and yet come
back. `ack` reports which acks went out in time.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from dlq.messages import DeadLetter

_CHUNK = 1000  # ack ids per acknowledge/modify request, well under Pub/Sub's limits


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
    ) -> None:
        """`ack_deadline_s`: the deadline held messages are kept at (10 s, Pub/Sub's minimum,
        is right for any subscription: the keeper sets it explicitly). `expected`: how many
        messages the subscription held when the scan began (Monitoring's estimate, or a count):
        while fewer have been seen the scan keeps looking, for at most `budget_s` seconds of
        pulls that bring nothing new."""
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
        self._outstanding: dict[str, str] = {}  # message id -> ack id, not yet acked/released
        self._deadlines: dict[str, float] = {}  # ack id -> monotonic time its deadline passes
        self._lock = threading.RLock()
        self._stop_keeper = threading.Event()

    def batches(self) -> Iterator[list[DeadLetter]]:
        keeper = threading.Thread(target=self._keep, name="dlq-deadlines", daemon=True)
        keeper.start()
        unproductive, quiet_since, pause = 0, time.monotonic(), 0.05
        try:
            while not self._covered(unproductive, time.monotonic() - quiet_since):
                pulled_at = time.monotonic()
                fresh: list[DeadLetter] = []
                repeats: list[str] = []
                for item in self._pull():
                    letter = DeadLetter.from_received(item)
                    if letter.message_id in self._seen:
                        repeats.append(letter.ack_id)
                    else:
                        self._seen.add(letter.message_id)
                        with self._lock:
                            self._outstanding[letter.message_id] = letter.ack_id
                            self._deadlines[letter.ack_id] = pulled_at + self.ack_deadline_s
                        fresh.append(letter)
                self._modify(repeats)
                if not fresh:  # empty, or only letters already seen: back off and look again
                    unproductive += 1
                    time.sleep(pause)
                    pause = min(pause * 2, 1.0)
                    continue
                unproductive, quiet_since, pause = 0, time.monotonic(), 0.05
                self.stats.distinct += len(fresh)
                yield fresh
        finally:
            self._stop_keeper.set()
            keeper.join(5)
            self.release_outstanding()

    def _covered(self, unproductive: int, quiet_for: float) -> bool:
        """Seen everything (as far as pulls can tell): enough unproductive pulls over enough
        time, and — when a backlog size is known — that many seen or the budget spent."""
        if unproductive < self.quiet_pulls or quiet_for < self.quiet_seconds:
            return False
        if self.expected is not None and len(self._seen) < self.expected:
            return quiet_for >= self.budget_s
        return True

    @property
    def possibly_remaining(self) -> int | None:
        """How many of the expected messages the scan never saw (None: no expectation)."""
        if self.expected is None:
            return None
        return max(0, self.expected - len(self._seen))

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
        for chunk in _chunks(ids):
            self.subscriber.acknowledge(subscription=self.subscription, ack_ids=chunk)
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
                for chunk in _chunks(held):
                    self.subscriber.modify_ack_deadline(
                        subscription=self.subscription,
                        ack_ids=chunk,
                        ack_deadline_seconds=self.ack_deadline_s,
                        timeout=period,
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
        for chunk in _chunks(ack_ids):
            self.subscriber.modify_ack_deadline(
                subscription=self.subscription, ack_ids=chunk, ack_deadline_seconds=0
            )

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
        return list(response.received_messages)


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
