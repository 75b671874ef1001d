"""Walking a dead-letter subscription once, whatever the caller does with each message.

Pulled messages are either acknowledged (gone) or released at once (ack deadline 0), never held
until their deadline. Released messages come straight back in later pulls, so the scan keeps the
ids it has seen and ends when pulls return nothing new: the backlog has been covered.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from cli.dlq.messages import DeadLetter

_CHUNK = 1000  # ack ids per acknowledge/modify request, well under Pub/Sub's limits


@dataclass
class ScanStats:
    pulls: int = 0
    distinct: int = 0
    acknowledged: int = 0
    released: int = 0


class Scanner:
    """Yields batches of not-yet-seen dead letters; the caller must `ack` or `release` each
    one (anything it does not is released when the scan ends)."""

    def __init__(
        self,
        subscriber: Any,
        subscription: str,
        batch_size: int = 100,
        pull_timeout: float = 2.0,
        stale_limit: int = 2,
        empty_limit: int = 2,
    ) -> None:
        self.subscriber = subscriber
        self.subscription = subscription
        self.batch_size = max(1, min(batch_size, 1000))
        self.pull_timeout = pull_timeout
        self.stale_limit = stale_limit
        self.empty_limit = empty_limit
        self.stats = ScanStats()
        self._seen: set[str] = set()
        self._outstanding: dict[str, str] = {}  # message id -> ack id, not yet acked/released

    def batches(self) -> Iterator[list[DeadLetter]]:
        stale = empty = 0
        try:
            while stale < self.stale_limit and empty < self.empty_limit:
                received = self._pull()
                if not received:
                    empty += 1
                    continue
                empty = 0
                fresh: list[DeadLetter] = []
                repeats: list[str] = []
                for item in received:
                    letter = DeadLetter.from_received(item)
                    if letter.message_id in self._seen:
                        repeats.append(letter.ack_id)
                    else:
                        self._seen.add(letter.message_id)
                        self._outstanding[letter.message_id] = letter.ack_id
                        fresh.append(letter)
                self._modify(repeats)
                if not fresh:
                    stale += 1
                    continue
                stale = 0
                self.stats.distinct += len(fresh)
                yield fresh
        finally:
            self.release_outstanding()

    def ack(self, letters: Iterable[DeadLetter]) -> None:
        ids = self._take(letters)
        for chunk in _chunks(ids):
            self.subscriber.acknowledge(subscription=self.subscription, ack_ids=chunk)
        self.stats.acknowledged += len(ids)

    def release(self, letters: Iterable[DeadLetter]) -> None:
        ids = self._take(letters)
        self._modify(ids)
        self.stats.released += len(ids)

    def release_outstanding(self) -> None:
        ids = list(self._outstanding.values())
        self._outstanding.clear()
        self._modify(ids)
        self.stats.released += len(ids)

    def _take(self, letters: Iterable[DeadLetter]) -> list[str]:
        return [
            self._outstanding.pop(letter.message_id)
            for letter in letters
            if letter.message_id in self._outstanding
        ]

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
