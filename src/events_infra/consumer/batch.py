"""One batch of messages through the handler: the exactly-once-effects rule in one place.

Fast path: one transaction records every event id in processed_events (ids already there are
duplicates: acknowledged, handler not run), runs the handler for the new ones, commits, and only
then are the messages acknowledged. If a handler raises, the transaction is rolled back (its
record and the handler's changes with it), that event gets its outcome (nack, or dead-letter for a
poison exception) without running again, and the rest of the batch is processed afresh.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from events_infra.consumer.event import LegacyMessages, ReceivedEvent, UndecodableEvent, decode


class Outcome(enum.Enum):
    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    RETRY = "retry"  # nack: Pub/Sub redelivers with backoff, dead-letters after max attempts
    POISON = "poison"  # can never succeed: logged, nacked until Pub/Sub dead-letters it


@dataclass
class Result:
    message: Any
    outcome: Outcome
    event: ReceivedEvent | None = None
    error: BaseException | None = None


class Transactions(Protocol):
    def record(self, event_ids: list[uuid.UUID]) -> set[uuid.UUID]: ...
    def handle(self, event: ReceivedEvent) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...


def process_batch(
    tx: Transactions,
    messages: list[Any],
    poison: tuple[type[BaseException], ...],
    legacy: LegacyMessages | None = None,
) -> list[Result]:
    """Outcomes for `messages` (in order); the successful ones are committed when it returns.

    Raises only for database failures outside the handler (connection lost, commit refused):
    then nothing of the batch is committed and the caller nacks it all.
    """
    results: list[Result] = []
    pending: list[tuple[Any, ReceivedEvent]] = []
    for message in messages:
        try:
            pending.append((message, decode(message, legacy)))
        except UndecodableEvent as err:
            results.append(Result(message, Outcome.POISON, error=err))
    while pending:
        failed = _try_all(tx, pending, results, poison)
        if failed is None:
            break
        pending = [item for item in pending if item is not failed]
    return results


def _try_all(
    tx: Transactions,
    pending: list[tuple[Any, ReceivedEvent]],
    results: list[Result],
    poison: tuple[type[BaseException], ...],
) -> tuple[Any, ReceivedEvent] | None:
    """Run `pending` in one transaction. On success append their results and return None; if a
    handler raises, roll back, append only the failed event's result and return it."""
    fresh = tx.record(sorted({event.event_id for _, event in pending}))
    done: list[Result] = []
    for item in pending:
        message, event = item
        if event.event_id not in fresh:
            done.append(Result(message, Outcome.DUPLICATE, event))
            continue
        fresh.discard(event.event_id)  # a second copy in the same batch is a duplicate
        try:
            tx.handle(event)
        except Exception as err:
            tx.rollback()
            outcome = Outcome.POISON if isinstance(err, poison) else Outcome.RETRY
            results.append(Result(message, outcome, event, err))
            return item
        done.append(Result(message, Outcome.PROCESSED, event))
    tx.commit()
    results.extend(done)
    return None
